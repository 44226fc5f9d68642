//! Messaging driver: `messaging://` (Python's
//! `osprofiler.drivers.messaging`), notifications as oslo.messaging
//! notifier messages on RabbitMQ.
//!
//! # Wire format
//!
//! Every start/stop is one AMQP message, exactly as oslo.messaging's
//! `messaging` (1.0) notifier driver publishes it for osprofiler:
//!
//! - exchange `openstack` (oslo's `control_exchange`, configurable with
//!   `[DEFAULT] control_exchange`), type `topic`; routing key and queue
//!   `profiler.info`. Like oslo, the publisher declares the exchange, the
//!   queue and the binding on each new connection, so notifications are
//!   kept while nobody reads them. Exchange and queue are declared
//!   non-durable (oslo's default); if they already exist with other
//!   arguments (`amqp_durable_queues`, quorum queues) they are used as they
//!   are (passive declaration) instead of failing as oslo does.
//! - properties `content_type=application/json`, `content_encoding=utf-8`,
//!   `delivery_mode=2`, `priority=0`, empty `headers`.
//! - body: the bare JSON dict, keys in oslo's order, written as Python's
//!   `json.dumps` writes it: `{"message_id", "publisher_id", "event_type":
//!   "profiler.<service>", "priority": "INFO", "payload", "timestamp",
//!   "_unique_id"}`.
//!
//! # Writing
//!
//! Unlike Python (one synchronous publish per event, in the traced
//! request), the collector thread hands whole batches to
//! [`Driver::notify`], which publishes them on one channel with publisher
//! confirms and waits for the confirms once per batch. `message_id` and
//! `_unique_id` are derived from the notification itself (and a random
//! per-driver salt), so a batch re-sent after a failure carries the same
//! ids and readers drop the copies. The connection is opened lazily and
//! dropped after any failure: while RabbitMQ is down or restarting
//! `notify` fails fast and the collector keeps the batch for a retry.
//!
//! # Reading
//!
//! [`Driver::get_events`] consumes the queue `profiler.info` (manual acks,
//! unlimited prefetch, like oslo's listener) and collects the payloads whose
//! `base_id` equals the one asked for (upstream matches it as a regex
//! prefix) until no new one arrived for `idle_timeout_seconds` (and the
//! backlog present at the start was scanned). Copies of a message (same
//! `_unique_id`) are kept once. It reads the bare 1.0
//! format and the 2.0 envelope (`{"oslo.version", "oslo.message"}`) and
//! turns kombu's type tags (`{"__type__", "__value__"}`) into text.
//!
//! Upstream acks, and so destroys, every message it sees, including other
//! traces'. This reader acks only the messages of the trace it reads; the
//! others stay unacknowledged until it is done and then go back to the
//! queue at their original position, readable by the next reader. Messages
//! it cannot decode are left in the queue too, and counted
//! ([`MessagingDriver::skipped_messages`]).
//!
//! `list_traces` and `list_error_traces` are not supported (a queue cannot
//! be listed), as upstream.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind, ExchangeKind,
};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::{redact_secrets, Driver};
use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::profiler::id::{format_uuid, random_uuid4};

/// oslo's notification topic of osprofiler.
pub const TOPIC: &str = "profiler";
/// Routing key and queue name: `<topic>.<priority>`.
pub const QUEUE: &str = "profiler.info";
/// oslo's default `control_exchange`.
pub const DEFAULT_EXCHANGE: &str = "openstack";
/// Transport used when the configuration has none (oslo's defaults).
pub const DEFAULT_TRANSPORT_URL: &str = "rabbit://guest:guest@localhost:5672/";

const NAME: &str = "messaging";
const DEFAULT_PORT: u16 = 5672;
/// Time allowed to open a connection and declare the topology, per host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a batch to be published and confirmed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for closing channels and connections.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest reading window: with `idle_timeout 0` the messages already in
/// the queue are still read.
const MIN_IDLE: Duration = Duration::from_millis(200);
/// Pause between reconnection attempts of the reader.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Publishes notifications to RabbitMQ as oslo.messaging does, and reads
/// traces back from the `profiler.info` queue.
///
/// Create it with [`MessagingDriver::new`] or through
/// [`get_driver`](super::get_driver) with the connection string
/// `messaging://`; the broker comes from `transport_url` of the
/// configuration.
pub struct MessagingDriver {
    transport_url: String,
    hosts: Vec<AMQPUri>,
    exchange: String,
    project: Option<String>,
    service: Option<String>,
    publisher_id: String,
    event_type: String,
    idle_timeout: Duration,
    salt: String,
    runtime: Option<tokio::runtime::Runtime>,
    publisher: Mutex<Option<Link>>,
    skipped: AtomicU64,
}

/// An open connection with a channel on which the topology is declared.
struct Link {
    connection: Connection,
    channel: Channel,
    /// Ready messages in the queue when it was declared.
    backlog: u64,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.channel.close(200, "done".into()).await;
            let _ = self.connection.close(200, "done".into()).await;
        })
        .await;
    }
}

impl fmt::Debug for MessagingDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagingDriver")
            .field("transport_url", &redact_secrets(&self.transport_url))
            .field("exchange", &self.exchange)
            .field("project", &self.project)
            .field("service", &self.service)
            .field("publisher_id", &self.publisher_id)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl MessagingDriver {
    /// A driver for `connection_string` (`messaging://`; anything after the
    /// scheme is ignored, as upstream does).
    ///
    /// Uses `transport_url` (default [`DEFAULT_TRANSPORT_URL`]),
    /// `control_exchange` and `idle_timeout_seconds` from `conf`. `host`
    /// becomes the messages' `publisher_id` (default: this machine's host
    /// name). Does not connect: the first use does, and every use after a
    /// failure.
    pub fn new(
        connection_string: &str,
        project: Option<&str>,
        service: Option<&str>,
        host: Option<&str>,
        conf: &ProfilerConfig,
    ) -> Result<MessagingDriver> {
        let scheme = connection_string.split_once("://").map_or("", |(s, _)| s);
        if scheme != NAME {
            return Err(Error::InvalidConnectionString {
                connection_string: redact_secrets(connection_string),
                reason: format!("unsupported scheme {scheme:?} for the messaging driver"),
            });
        }
        let transport_url = conf
            .transport_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(DEFAULT_TRANSPORT_URL)
            .trim()
            .to_string();
        let hosts = parse_transport_url(&transport_url).map_err(|reason| {
            Error::InvalidConnectionString {
                connection_string: redact_secrets(&transport_url),
                reason,
            }
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("osprofiler-amqp")
            .enable_all()
            .build()
            .map_err(|e| Error::backend(NAME, format!("cannot start the AMQP runtime: {e}")))?;
        Ok(MessagingDriver {
            hosts,
            exchange: conf.control_exchange.clone(),
            project: project.map(String::from),
            service: service.map(String::from),
            publisher_id: host.map_or_else(
                || crate::notifier::collector::host().to_string(),
                String::from,
            ),
            // Python formats `"profiler.{}".format(service)`: None -> "None".
            event_type: format!("{TOPIC}.{}", service.unwrap_or("None")),
            idle_timeout: Duration::from_secs(conf.idle_timeout_seconds),
            salt: format_uuid(random_uuid4()),
            runtime: Some(runtime),
            publisher: Mutex::new(None),
            skipped: AtomicU64::new(0),
            transport_url,
        })
    }

    /// The exchange notifications are published to.
    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Messages read from the queue that could not be decoded (not JSON,
    /// not a notification), in all; they were left in the queue.
    pub fn skipped_messages(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The AMQP message body of one notification (see the module docs).
    pub fn message_body(&self, notification: &Notification) -> String {
        let payload = notification.to_value(self.project.as_deref(), self.service.as_deref());
        let mut message = Map::with_capacity(7);
        message.insert(
            "message_id".into(),
            self.derived_id("m", notification).into(),
        );
        message.insert("publisher_id".into(), self.publisher_id.clone().into());
        message.insert("event_type".into(), self.event_type.clone().into());
        message.insert("priority".into(), "INFO".into());
        message.insert("payload".into(), payload);
        message.insert(
            "timestamp".into(),
            python_str_datetime(&notification.timestamp).into(),
        );
        let unique: String = self
            .derived_id("u", notification)
            .chars()
            .filter(|c| *c != '-')
            .collect();
        message.insert("_unique_id".into(), unique.into());
        crate::pyjson::to_string(&Value::Object(message))
    }

    /// A uuid4-shaped id that is the same every time this driver sends the
    /// same notification.
    fn derived_id(&self, kind: &str, n: &Notification) -> String {
        let mut hasher = Sha1::new();
        for part in [
            kind,
            &self.salt,
            &n.base_id,
            &n.trace_id,
            &n.parent_id,
            &n.name,
            &n.timestamp,
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let raw = u128::from_be_bytes(bytes);
        format_uuid((raw & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62))
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime
            .as_ref()
            .ok_or_else(|| Error::backend(NAME, "the driver is shutting down"))
    }

    /// Runs `future` to completion on the driver's runtime. Works from any
    /// thread, including one that is itself inside a tokio runtime.
    fn block_on<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(runtime.block_on(future));
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("osprofiler-amqp-call".into())
                .spawn_scoped(scope, || runtime.block_on(future))
                .map_err(|e| Error::backend(NAME, format!("cannot start a thread: {e}")))?
                .join()
                .map_err(|_| Error::backend(NAME, "the AMQP call panicked"))
        })
    }

    fn error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::backend(
            NAME,
            format!("{what} ({}): {e}", redact_secrets(&self.transport_url)),
        )
    }

    /// Connects to the first host that answers and declares the topology.
    async fn connect(&self) -> Result<Link> {
        let mut last_error = String::new();
        for uri in &self.hosts {
            let host = format!("{}:{}", uri.authority.host, uri.authority.port);
            match tokio::time::timeout(CONNECT_TIMEOUT, self.open(uri.clone())).await {
                Ok(Ok(link)) => return Ok(link),
                Ok(Err(e)) => last_error = format!("{host}: {e}"),
                Err(_) => last_error = format!("{host}: timed out"),
            }
        }
        Err(self.error("cannot connect to RabbitMQ", last_error))
    }

    async fn open(&self, uri: AMQPUri) -> lapin::Result<Link> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("osprofiler-rs:{}", std::process::id()).into());
        let connection = Connection::connect_uri(uri, properties).await?;
        match self.declare(&connection).await {
            Ok((channel, backlog)) => Ok(Link {
                connection,
                channel,
                backlog,
            }),
            Err(e) => {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    connection.close(200, "declare failed".into()),
                )
                .await;
                Err(e)
            }
        }
    }

    /// Declares the exchange, the queue and the binding as oslo does,
    /// adopting an exchange or queue that exists with other arguments.
    /// Returns a usable channel and the queue's ready message count.
    async fn declare(&self, connection: &Connection) -> lapin::Result<(Channel, u64)> {
        let mut channel = connection.create_channel().await?;
        let mut durable = false;
        if !self.exchange.is_empty() {
            let options = ExchangeDeclareOptions {
                durable: false,
                auto_delete: false,
                ..ExchangeDeclareOptions::default()
            };
            let declared = channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    options,
                    FieldTable::default(),
                )
                .await;
            if let Err(e) = declared {
                if !precondition_failed(&e) {
                    return Err(e);
                }
                // It exists with other arguments (durable, most likely):
                // use it as it is, and expect the queue to match it.
                channel = connection.create_channel().await?;
                channel
                    .exchange_declare(
                        self.exchange.as_str().into(),
                        ExchangeKind::Topic,
                        ExchangeDeclareOptions {
                            passive: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                durable = true;
            }
        }
        let options = QueueDeclareOptions {
            durable,
            ..QueueDeclareOptions::default()
        };
        let queue = match channel
            .queue_declare(QUEUE.into(), options, FieldTable::default())
            .await
        {
            Ok(queue) => queue,
            Err(e) if precondition_failed(&e) => {
                channel = connection.create_channel().await?;
                channel
                    .queue_declare(
                        QUEUE.into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?
            }
            Err(e) => return Err(e),
        };
        if !self.exchange.is_empty() {
            channel
                .queue_bind(
                    QUEUE.into(),
                    self.exchange.as_str().into(),
                    QUEUE.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok((channel, u64::from(queue.message_count())))
    }

    fn lock_publisher(&self) -> MutexGuard<'_, Option<Link>> {
        self.publisher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes `bodies` on `channel` and waits for every confirm.
    async fn publish(&self, channel: &Channel, bodies: &[String]) -> Result<()> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_priority(0)
            .with_headers(FieldTable::default());
        let mut confirms = Vec::with_capacity(bodies.len());
        for body in bodies {
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    QUEUE.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties.clone(),
                )
                .await
                .map_err(|e| self.error("publish failed", e))?;
            confirms.push(confirm);
        }
        let mut refused = 0;
        for confirm in confirms {
            let confirmation = confirm
                .await
                .map_err(|e| self.error("publish not confirmed", e))?;
            if confirmation.is_nack() {
                refused += 1;
            }
        }
        if refused > 0 {
            return Err(self.error(
                "publish refused",
                format!("RabbitMQ refused {refused} of {} messages", bodies.len()),
            ));
        }
        Ok(())
    }

    /// Reads the events of `base_id` (see the module docs).
    async fn collect(&self, base_id: &str) -> Result<Vec<Value>> {
        let idle = self.idle_timeout.max(MIN_IDLE);
        let mut reading = Reading::new(base_id);
        let mut first_connection = true;
        loop {
            let link = match self.connect().await {
                Ok(link) => link,
                Err(e) => {
                    if reading.deadline(idle) <= Instant::now() {
                        return reading.give_up(e);
                    }
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    continue;
                }
            };
            if first_connection {
                reading.backlog = link.backlog;
                first_connection = false;
            }
            let outcome = self.consume(&link, &mut reading, idle).await;
            link.close().await;
            match outcome {
                Ok(()) => break,
                Err(e) => {
                    log::warn!(
                        "osprofiler: messaging reader lost its connection ({e}); reconnecting"
                    );
                    if reading.deadline(idle) <= Instant::now() {
                        return reading.give_up(e);
                    }
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
            }
        }
        if reading.skipped > 0 {
            log::warn!(
                "osprofiler: {} messages in {QUEUE} could not be decoded; they were left in the queue",
                reading.skipped
            );
        }
        Ok(reading.events)
    }

    /// Consumes until the reading window closes (`Ok`) or the connection
    /// fails (`Err`). Messages of other traces stay unacknowledged; closing
    /// the channel afterwards puts them back in the queue.
    async fn consume(&self, link: &Link, reading: &mut Reading<'_>, idle: Duration) -> Result<()> {
        let mut consumer = link
            .channel
            .basic_consume(
                QUEUE.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error("cannot consume", e))?;
        let tag = consumer.tag();
        loop {
            let wait = reading
                .deadline(idle)
                .saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            let delivery = match tokio::time::timeout(wait, next_delivery(&mut consumer)).await {
                Err(_) => continue,
                Ok(None) => return Err(self.error("consumer cancelled", "by the broker")),
                Ok(Some(Err(e))) => return Err(self.error("delivery failed", e)),
                Ok(Some(Ok(delivery))) => delivery,
            };
            reading.seen += 1;
            reading.last_any = Instant::now();
            match classify(&delivery.data, reading.base_id) {
                Classified::Match { payload, unique_id } => {
                    delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(|e| self.error("ack failed", e))?;
                    reading.accept(payload, unique_id);
                }
                Classified::Other => {}
                Classified::Malformed => {
                    reading.skipped += 1;
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = link
            .channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await;
        Ok(())
    }
}

impl Drop for MessagingDriver {
    fn drop(&mut self) {
        let link = self.lock_publisher().take();
        if let Some(runtime) = self.runtime.take() {
            if let Some(link) = link {
                let _ = self.block_on_runtime(&runtime, link);
            }
            runtime.shutdown_timeout(CLOSE_TIMEOUT);
        }
    }
}

impl MessagingDriver {
    /// Closes `link` on `runtime` (used while dropping the driver).
    fn block_on_runtime(&self, runtime: &tokio::runtime::Runtime, link: Link) -> Option<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            runtime.block_on(link.close());
            Some(())
        } else {
            // Inside another runtime: closing would need to block it; the
            // connection is dropped (and closed by the broker) instead.
            None
        }
    }
}

/// State of one `get_events` call.
struct Reading<'a> {
    base_id: &'a str,
    events: Vec<Value>,
    unique_ids: HashSet<String>,
    started: Instant,
    last_match: Option<Instant>,
    last_any: Instant,
    /// Ready messages when the reader started; the window stays open until
    /// that many were seen (or nothing at all arrives for a while).
    backlog: u64,
    seen: u64,
    skipped: u64,
}

impl<'a> Reading<'a> {
    fn new(base_id: &'a str) -> Reading<'a> {
        let now = Instant::now();
        Reading {
            base_id,
            events: Vec::new(),
            unique_ids: HashSet::new(),
            started: now,
            last_match: None,
            last_any: now,
            backlog: 0,
            seen: 0,
            skipped: 0,
        }
    }

    /// When reading stops: `idle` after the last event of the trace (or
    /// the start), extended while the initial backlog is still arriving.
    fn deadline(&self, idle: Duration) -> Instant {
        let matched = self.last_match.unwrap_or(self.started) + idle;
        if self.seen < self.backlog {
            matched.max(self.last_any + idle)
        } else {
            matched
        }
    }

    fn accept(&mut self, payload: Value, unique_id: Option<String>) {
        // A re-sent or redelivered copy of a message already taken.
        let key = unique_id.unwrap_or_else(|| payload.to_string());
        if self.unique_ids.insert(key) {
            self.events.push(payload);
            self.last_match = Some(Instant::now());
        }
    }

    /// The broker went away: what was read so far, or the error if nothing.
    fn give_up(self, error: Error) -> Result<Vec<Value>> {
        if self.events.is_empty() {
            Err(error)
        } else {
            log::warn!(
                "osprofiler: messaging reader stopped early ({error}); the trace may be incomplete"
            );
            Ok(self.events)
        }
    }
}

async fn next_delivery(consumer: &mut Consumer) -> Option<lapin::Result<lapin::message::Delivery>> {
    std::future::poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}

fn precondition_failed(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e) if e.get_id() == 406)
}

/// What a message on the queue is to a reader of one trace.
#[derive(Debug, PartialEq)]
enum Classified {
    /// A notification of the trace: its payload and `_unique_id`.
    Match {
        payload: Value,
        unique_id: Option<String>,
    },
    /// A notification of another trace (or another priority).
    Other,
    /// Not a notification at all.
    Malformed,
}

fn classify(body: &[u8], base_id: &str) -> Classified {
    let Some(mut message) = decode_message(body) else {
        return Classified::Malformed;
    };
    // oslo's dispatcher hands only `info` messages to osprofiler's endpoint.
    match message.get("priority") {
        None => {}
        Some(Value::String(p)) if p.eq_ignore_ascii_case("info") => {}
        Some(_) => return Classified::Other,
    }
    let unique_id = match message.get("_unique_id") {
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    let Some(mut payload) = message.remove("payload") else {
        return Classified::Malformed;
    };
    if !payload.is_object() {
        return Classified::Malformed;
    }
    if payload.get("base_id").and_then(Value::as_str) != Some(base_id) {
        return Classified::Other;
    }
    untag(&mut payload);
    Classified::Match { payload, unique_id }
}

/// The reader's message decoding and transport URL parsing, reachable by
/// the fuzz targets (`fuzz/`) and `tests/hostile_input.rs`. Not API.
#[doc(hidden)]
pub mod __fuzz {
    use serde_json::Value;

    /// What a reader of `base_id` makes of a message body: `"match"` with
    /// the payload it keeps and the message's `_unique_id`, `"other"` or
    /// `"malformed"` with no payload.
    pub fn classify_body(
        body: &[u8],
        base_id: &str,
    ) -> (&'static str, Option<(Value, Option<String>)>) {
        match super::classify(body, base_id) {
            super::Classified::Match { payload, unique_id } => {
                ("match", Some((payload, unique_id)))
            }
            super::Classified::Other => ("other", None),
            super::Classified::Malformed => ("malformed", None),
        }
    }

    /// The AMQP endpoints of an oslo transport URL as
    /// `(user, password, host, port, vhost)`, or the parse error.
    #[allow(clippy::type_complexity)]
    pub fn transport_endpoints(
        url: &str,
    ) -> Result<Vec<(String, String, String, u16, String)>, String> {
        Ok(super::parse_transport_url(url)?
            .into_iter()
            .map(|uri| {
                let a = uri.authority;
                (
                    a.userinfo.username,
                    a.userinfo.password,
                    a.host,
                    a.port,
                    uri.vhost,
                )
            })
            .collect())
    }
}

/// The notification dict of a message body: the bare 1.0 format, or the
/// 2.0 envelope `{"oslo.version": "2.0", "oslo.message": "<json>"}`.
fn decode_message(body: &[u8]) -> Option<Map<String, Value>> {
    let Value::Object(mut message) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    if message.contains_key("oslo.version") {
        let Value::String(inner) = message.remove("oslo.message")? else {
            return None;
        };
        let Value::Object(inner) = serde_json::from_str(&inner).ok()? else {
            return None;
        };
        message = inner;
    }
    Some(message)
}

/// Replaces kombu's type tags (`{"__type__": t, "__value__": v}`) by the
/// text Python's `trace show --json` prints for the decoded object:
/// `datetime`, `date`, `time`, `decimal` and `bytes` become their text,
/// `uuid` the canonical uuid. Unknown tags are kept as they are.
fn untag(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(untag),
        Value::Object(map) => {
            map.values_mut().for_each(untag);
            if map.len() == 2 {
                if let (Some(Value::String(kind)), Some(inner)) =
                    (map.get("__type__"), map.get("__value__"))
                {
                    if let Some(plain) = decode_tag(kind, inner) {
                        *value = plain;
                    }
                }
            }
        }
        _ => {}
    }
}

fn decode_tag(kind: &str, value: &Value) -> Option<Value> {
    match (kind, value) {
        ("datetime" | "date" | "time" | "decimal" | "bytes", Value::String(text)) => {
            Some(Value::String(text.clone()))
        }
        ("uuid", Value::Object(fields)) => {
            let hex = fields.get("hex")?.as_str()?;
            let value = u128::from_str_radix(hex, 16).ok()?;
            (hex.len() == 32).then(|| Value::String(format_uuid(value)))
        }
        _ => None,
    }
}

/// Python's `str(datetime)` of a `%Y-%m-%dT%H:%M:%S.%f` timestamp: a space
/// instead of the `T`, and no fraction when it is zero.
fn python_str_datetime(timestamp: &str) -> String {
    let text = timestamp.replacen('T', " ", 1);
    match text.strip_suffix(".000000") {
        Some(whole_seconds) => whole_seconds.to_string(),
        None => text,
    }
}

/// Parses an oslo transport URL (hosts are tried in the order given; oslo
/// shuffles them),
/// `rabbit://[user[:password]@]host[:port][,[user[:password]@]host[:port]...]/[vhost]`,
/// into one AMQP URI per host, in order. Missing credentials are
/// `guest`/`guest`, the missing port 5672, an empty vhost `/` (kombu's
/// defaults).
fn parse_transport_url(url: &str) -> Result<Vec<AMQPUri>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "no scheme (expected rabbit://...)".to_string())?;
    match scheme {
        "rabbit" | "kombu+rabbit" | "amqp" => {}
        other => {
            return Err(format!(
                "unsupported transport {other:?} (only rabbit:// is supported)"
            ))
        }
    }
    let rest = rest.split('#').next().unwrap_or("");
    let rest = rest.split('?').next().unwrap_or("");
    let (netloc, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let vhost = match path.strip_prefix('/') {
        Some(v) if !v.is_empty() => decode(v),
        _ => "/".to_string(),
    };
    let mut hosts = Vec::new();
    for entry in netloc.split(',').filter(|h| !h.is_empty()) {
        let (userinfo, hostport) = match entry.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, entry),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (decode(user), decode(password)),
                None => (decode(u), String::new()),
            },
            None => (String::new(), String::new()),
        };
        let (host, port) = split_host_port(hostport)?;
        hosts.push(amqp_uri(
            username,
            password,
            if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port.unwrap_or(DEFAULT_PORT),
            vhost.clone(),
        ));
    }
    if hosts.is_empty() {
        hosts.push(amqp_uri(
            String::new(),
            String::new(),
            "localhost".into(),
            DEFAULT_PORT,
            vhost,
        ));
    }
    Ok(hosts)
}

fn amqp_uri(username: String, password: String, host: String, port: u16, vhost: String) -> AMQPUri {
    let or_guest = |s: String| if s.is_empty() { "guest".to_string() } else { s };
    AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: or_guest(username),
                password: or_guest(password),
            },
            host,
            port,
        },
        vhost,
        query: AMQPQueryString {
            connection_timeout: Some(CONNECT_TIMEOUT.as_millis() as u64),
            ..AMQPQueryString::default()
        },
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let bad_port = |p: &str| format!("invalid port {p:?}");
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid host {text:?}"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), Some(p.parse().map_err(|_| bad_port(p))?))),
            None if after.is_empty() => Ok((host.to_string(), None)),
            None => Err(format!("invalid host {text:?}")),
        };
    }
    match text.rsplit_once(':') {
        Some((host, "")) => Ok((host.to_string(), None)),
        Some((host, p)) => Ok((host.to_string(), Some(p.parse().map_err(|_| bad_port(p))?))),
        None => Ok((text.to_string(), None)),
    }
}

impl Driver for MessagingDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let bodies: Vec<String> = batch.iter().map(|n| self.message_body(n)).collect();
        let mut slot = self.lock_publisher();
        if let Some(stale) = slot.take_if(|link| !link.usable()) {
            let _ = self.block_on(stale.close());
        }
        if slot.is_none() {
            let link = self.block_on(async {
                let mut link = self.connect().await?;
                link.channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| self.error("cannot enable publisher confirms", e))?;
                link.backlog = 0;
                Ok::<_, Error>(link)
            })??;
            *slot = Some(link);
        }
        let Some(link) = slot.as_ref() else {
            return Err(self.error("no connection", "not connected"));
        };
        let result = self.block_on(async {
            match tokio::time::timeout(PUBLISH_TIMEOUT, self.publish(&link.channel, &bodies)).await
            {
                Ok(result) => result,
                Err(_) => Err(self.error("publish failed", "no confirm from RabbitMQ in time")),
            }
        })?;
        if result.is_err() {
            if let Some(link) = slot.take() {
                let _ = self.block_on(link.close());
            }
        }
        result
    }

    fn get_events(&self, base_id: &str) -> Result<Vec<Value>> {
        self.block_on(self.collect(base_id))?
    }

    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        let _ = fields;
        Err(Error::Unsupported {
            driver: NAME,
            operation: "list_traces",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn driver(conf: &ProfilerConfig) -> MessagingDriver {
        MessagingDriver::new(
            "messaging://",
            Some("proj"),
            Some("svc"),
            Some("host"),
            conf,
        )
        .unwrap()
    }

    #[test]
    fn transport_urls_like_oslo() {
        let hosts = parse_transport_url("rabbit://u%40x:p%3Ass@h1:5673,h2/my%2Fvhost").unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].authority.userinfo.username, "u@x");
        assert_eq!(hosts[0].authority.userinfo.password, "p:ss");
        assert_eq!(hosts[0].authority.host, "h1");
        assert_eq!(hosts[0].authority.port, 5673);
        assert_eq!(hosts[0].vhost, "my/vhost");
        assert_eq!(hosts[1].authority.userinfo.username, "guest");
        assert_eq!(hosts[1].authority.port, 5672);
        let hosts = parse_transport_url("rabbit://guest:guest@127.0.0.1:5672/").unwrap();
        assert_eq!(hosts[0].vhost, "/");
        let hosts = parse_transport_url("rabbit://").unwrap();
        assert_eq!(hosts[0].authority.host, "localhost");
        assert_eq!(hosts[0].vhost, "/");
        let hosts = parse_transport_url("rabbit://[::1]:5999/v?ssl=0").unwrap();
        assert_eq!(
            (hosts[0].authority.host.as_str(), hosts[0].authority.port),
            ("::1", 5999)
        );
        assert_eq!(hosts[0].vhost, "v");
        assert!(parse_transport_url("kafka://h:9092").is_err());
        assert!(parse_transport_url("rabbit://h:port/").is_err());
        assert!(parse_transport_url("no-scheme").is_err());
    }

    #[test]
    fn bad_urls_are_errors_without_passwords() {
        let conf = ProfilerConfig::default().with_transport_url("rabbit://u:secret@h:99999/");
        let err = MessagingDriver::new("messaging://", None, None, None, &conf).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let conf = ProfilerConfig::default().with_transport_url("rabbit://u:secret@h/");
        let d = MessagingDriver::new("messaging://", None, None, None, &conf).unwrap();
        assert!(!format!("{d:?}").contains("secret"));
        assert!(MessagingDriver::new("redis://", None, None, None, &conf).is_err());
    }

    #[test]
    fn bodies_are_oslo_notifications() {
        let conf = ProfilerConfig::default();
        let d = driver(&conf);
        let n = Notification {
            name: "db-start".into(),
            base_id: "b".into(),
            trace_id: "t".into(),
            parent_id: "p".into(),
            timestamp: "2026-11-21T09:33:13.503640".into(),
            info: Some(Map::from_iter([
                ("k".to_string(), json!("é")),
                ("host".to_string(), json!("vm")),
            ])),
        };
        let body = d.message_body(&n);
        let message: Map<String, Value> = serde_json::from_str(&body).unwrap();
        let keys: Vec<&str> = message.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "message_id",
                "publisher_id",
                "event_type",
                "priority",
                "payload",
                "timestamp",
                "_unique_id"
            ]
        );
        let expected_payload = "\"payload\": {\"name\": \"db-start\", \"base_id\": \"b\", \
            \"trace_id\": \"t\", \"parent_id\": \"p\", \"timestamp\": \"2026-11-21T09:33:13.503640\", \
            \"info\": {\"k\": \"\\u00e9\", \"host\": \"vm\"}, \"project\": \"proj\", \"service\": \"svc\"}";
        assert!(body.contains(expected_payload), "{body}");
        assert!(body.contains(
            "\"publisher_id\": \"host\", \"event_type\": \"profiler.svc\", \"priority\": \"INFO\""
        ));
        assert!(body.contains("\"timestamp\": \"2026-11-21 09:33:13.503640\""));
        let message_id = message["message_id"].as_str().unwrap();
        assert_eq!(message_id.len(), 36);
        assert_eq!(&message_id[14..15], "4");
        let unique = message["_unique_id"].as_str().unwrap();
        assert_eq!(unique.len(), 32);
        assert!(unique.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same notification gets the same ids (retries are duplicates
        // readers can drop); another one gets others.
        assert_eq!(d.message_body(&n), body);
        let mut other = n.clone();
        other.name = "db-stop".into();
        assert_ne!(
            serde_json::from_str::<Value>(&d.message_body(&other)).unwrap()["_unique_id"],
            message["_unique_id"]
        );
        // A driver without service: Python's "profiler.None".
        let anonymous = MessagingDriver::new("messaging://", None, None, None, &conf).unwrap();
        assert!(anonymous
            .message_body(&n)
            .contains("\"event_type\": \"profiler.None\""));
    }

    #[test]
    fn python_str_of_datetimes() {
        assert_eq!(
            python_str_datetime("2026-01-01T00:00:00.000000"),
            "2026-01-01 00:00:00"
        );
        assert_eq!(
            python_str_datetime("2026-01-01T00:00:00.000010"),
            "2026-01-01 00:00:00.000010"
        );
    }

    #[test]
    fn reads_bare_enveloped_and_tagged_messages() {
        let payload = json!({"name": "a-start", "base_id": "B", "trace_id": "t", "parent_id": "B",
            "timestamp": "2024-01-01T00:00:00.000000", "info": {"host": "h",
            "dt": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.000006"},
            "u": {"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000001"}},
            "dec": {"__type__": "decimal", "__value__": "1.5"},
            "list": [{"__type__": "date", "__value__": "2024-01-02"}],
            "odd": {"__type__": "set", "__value__": [1]},
            "three": {"__type__": "date", "__value__": "x", "more": 1}},
            "project": "p", "service": "s"});
        let mut expected = payload.clone();
        expected["info"]["dt"] = json!("2024-01-02T03:04:05.000006");
        expected["info"]["u"] = json!("00000000-0000-0000-0000-000000000001");
        expected["info"]["dec"] = json!("1.5");
        expected["info"]["list"] = json!(["2024-01-02"]);
        let bare = json!({"message_id": "m", "publisher_id": "h", "event_type": "profiler.s",
            "priority": "INFO", "payload": payload, "timestamp": "2024-01-01 00:00:00",
            "_unique_id": "u1", "_context_user": "x"});
        let want = Classified::Match {
            payload: expected.clone(),
            unique_id: Some("u1".into()),
        };
        assert_eq!(classify(bare.to_string().as_bytes(), "B"), want);
        let envelope = json!({"oslo.version": "2.0", "oslo.message": bare.to_string()});
        assert_eq!(classify(envelope.to_string().as_bytes(), "B"), want);
        let minimal = json!({"priority": "info", "payload": payload});
        assert_eq!(
            classify(minimal.to_string().as_bytes(), "B"),
            Classified::Match {
                payload: expected,
                unique_id: None
            }
        );
        assert_eq!(
            classify(bare.to_string().as_bytes(), "C"),
            Classified::Other
        );
        // Prefixes of the id are other traces (Python matches a regex prefix).
        assert_eq!(classify(bare.to_string().as_bytes(), ""), Classified::Other);
        let error = json!({"priority": "ERROR", "payload": {"base_id": "B"}});
        assert_eq!(
            classify(error.to_string().as_bytes(), "B"),
            Classified::Other
        );
        for bad in [
            &b"not json"[..],
            b"[1, 2]",
            b"{\"priority\": \"info\"}",
            b"{\"payload\": 1}",
            b"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{\"}",
            b"{\"oslo.version\": \"2.0\", \"oslo.message\": 3}",
            b"\xff\xfe",
        ] {
            assert_eq!(classify(bad, "B"), Classified::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn the_window_waits_for_the_backlog_and_the_last_event() {
        let mut reading = Reading::new("b");
        let idle = Duration::from_secs(1);
        assert_eq!(reading.deadline(idle), reading.started + idle);
        reading.backlog = 10;
        reading.last_any = reading.started + Duration::from_secs(5);
        assert_eq!(
            reading.deadline(idle),
            reading.started + Duration::from_secs(6)
        );
        reading.seen = 10;
        assert_eq!(reading.deadline(idle), reading.started + idle);
        reading.accept(json!({"a": 1}), Some("u".into()));
        reading.accept(json!({"a": 2}), Some("u".into()));
        reading.accept(json!({"a": 3}), None);
        reading.accept(json!({"a": 3}), None);
        assert_eq!(reading.events, [json!({"a": 1}), json!({"a": 3})]);
        assert!(reading.deadline(idle) > reading.started + idle);
    }

    #[test]
    fn list_traces_is_unsupported() {
        let d = driver(&ProfilerConfig::default());
        assert!(matches!(
            d.list_traces(&[]),
            Err(Error::Unsupported {
                driver: "messaging",
                ..
            })
        ));
        assert!(d.list_error_traces().is_err());
    }
}
