//! Redis driver: `redis://` and `redissentinel://` (Python's
//! `osprofiler.drivers.redis_driver`), same keys and values.
//!
//! Layout, shared with Python services:
//! - every payload is `LPUSH`ed as JSON onto the list
//!   `osprofiler_opt:<base_id>` (newest first);
//! - the legacy layout, one key `osprofiler:<base_id>...` per payload, is
//!   still read;
//! - with `filter_error_trace`, an error stop also stores
//!   `SET osprofiler_error:<base_id> {"base_id", "timestamp"}`.
//!
//! Unlike Python (one round trip per event, in the traced request), a
//! whole batch from the collector thread goes in one `MULTI`/`EXEC`
//! round trip. The connection is opened lazily, with timeouts, and dropped
//! after any failure: a Redis that is down or restarting makes
//! [`Driver::notify`] return an error quickly, and the collector retries
//! the batch later.
//!
//! A retried batch is stored once, even when the failed attempt was
//! applied and only its reply was lost (Redis killed after writing its
//! append-only file, a dropped connection, a timeout). Each transaction
//! also sets `osprofiler_writer:<driver id>` to its sequence number; after
//! a failure the driver reads that marker back and leaves out of the retry
//! the events Redis already has. Python's readers never look at these keys.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use redis::{
    Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo,
    RedisConnectionInfo, Value,
};
use serde_json::{Map, Value as Json};

use super::{redact_secrets, Driver};
use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::{Event, Notification, Text};

/// Prefix of the per-trace lists.
pub const NAMESPACE_OPT: &str = "osprofiler_opt:";
/// Prefix of the legacy one-key-per-event layout.
pub const NAMESPACE_LEGACY: &str = "osprofiler:";
/// Prefix of the error index written with `filter_error_trace`.
pub const NAMESPACE_ERROR: &str = "osprofiler_error:";
/// Prefix of each driver's commit marker: the sequence number of its last
/// stored transaction.
pub const NAMESPACE_WRITER: &str = "osprofiler_writer:";
/// How long a commit marker outlives its driver's last write: it must
/// outlast any outage the collector's backlog survives.
const WRITER_MARKER_TTL_SECONDS: u64 = 7 * 24 * 3600;

const NAME: &str = "redis";
/// Time allowed to open a TCP connection to Redis (or to a sentinel, at
/// least its `socket_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a reply. Generous: a batch is many commands, and a
/// transaction abandoned on a timeout may still run after its retry checked
/// the commit marker, storing that batch twice.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys asked for per `SCAN` step, and commands per read-side pipeline.
const SCAN_COUNT: usize = 1000;
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Stores notifications in Redis, readable by Python osprofiler's Redis
/// driver and CLI.
///
/// Create it with [`RedisDriver::new`] or through
/// [`get_driver`](super::get_driver) with a `redis://` or
/// `redissentinel://` connection string.
pub struct RedisDriver {
    connection_string: String,
    endpoint: Endpoint,
    project: Option<String>,
    service: Option<String>,
    filter_error_trace: bool,
    ttl_seconds: Option<u64>,
    connection: super::reconnect::Reconnecting<Connection>,
    /// `osprofiler_writer:<random uuid>`.
    writer_marker: String,
    writes: Mutex<Writes>,
}

/// What this driver knows of its own transactions.
#[derive(Default)]
struct Writes {
    /// Sequence number of the last transaction sent.
    sequence: u64,
    /// Set when a delivery failed: the collector retries the same run.
    uncertain: Option<Uncertain>,
}

/// The front of a run whose delivery failed, as far as Redis may have it.
struct Uncertain {
    /// Payloads of those events, in run order.
    json: Vec<u8>,
    /// Events at the front known to be stored, and the bytes of their
    /// payloads in `json`.
    stored_events: usize,
    stored_bytes: usize,
    /// Events after those, sent in transaction `sequence` with no reply.
    sent_events: usize,
    sequence: u64,
}

enum Endpoint {
    Direct(ConnectionInfo),
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service_name: String,
        master: RedisConnectionInfo,
        timeout: Duration,
    },
}

impl fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDriver")
            .field(
                "connection_string",
                &redact_secrets(&self.connection_string),
            )
            .field("project", &self.project)
            .field("service", &self.service)
            .field("filter_error_trace", &self.filter_error_trace)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

impl RedisDriver {
    /// A driver for `connection_string`:
    /// `redis://[[user]:password@]host[:port][/db]` or
    /// `redissentinel://[[user]:password@]host[:port][,host[:port]...][/db]`
    /// (the password is the master's; sentinels are asked without one).
    ///
    /// Uses `filter_error_trace`, `trace_ttl_seconds`, and for Sentinel
    /// `sentinel_service_name` and `socket_timeout` from `conf`. Sentinels
    /// are tried in order, each within `socket_timeout` (as Python's); the
    /// master's replies get at least 5 s (see `IO_TIMEOUT`). Does not
    /// connect: the first use does, and every use after a failure.
    pub fn new(
        connection_string: &str,
        project: Option<&str>,
        service: Option<&str>,
        conf: &ProfilerConfig,
    ) -> Result<RedisDriver> {
        let invalid = |reason: String| Error::InvalidConnectionString {
            connection_string: redact_secrets(connection_string),
            reason,
        };
        let scheme = connection_string.split_once("://").map_or("", |(s, _)| s);
        let endpoint = match scheme {
            "redis" => {
                let info = connection_string
                    .into_connection_info()
                    .map_err(|e| invalid(redact_secrets(&e.to_string())))?;
                Endpoint::Direct(info)
            }
            "redissentinel" => parse_sentinel(connection_string, conf).map_err(invalid)?,
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?} for the Redis driver"
                )))
            }
        };
        Ok(RedisDriver {
            connection_string: connection_string.to_string(),
            endpoint,
            project: project.map(String::from),
            service: service.map(String::from),
            filter_error_trace: conf.filter_error_trace,
            ttl_seconds: conf.trace_ttl_seconds.filter(|&t| t > 0),
            connection: super::reconnect::Reconnecting::new(),
            writer_marker: format!(
                "{NAMESPACE_WRITER}{}",
                crate::profiler::id::format_uuid(crate::profiler::id::random_uuid4())
            ),
            writes: Mutex::new(Writes::default()),
        })
    }

    /// How many events at the front of `batch`, a retry of a run whose
    /// delivery failed, Redis already has. Reads the commit marker when the
    /// last transaction's outcome is unknown; an error leaves `uncertain`
    /// as it was. If the run does not start with the failed one's events,
    /// nothing can be left out: they may be stored twice, never lost.
    fn already_stored(&self, uncertain: &mut Uncertain, batch: &[Event<'_>]) -> Result<usize> {
        let events = uncertain.stored_events + uncertain.sent_events;
        let mut json = Vec::with_capacity(uncertain.json.len());
        for event in batch.iter().take(events) {
            event.write_json(&mut json, self.project.as_deref(), self.service.as_deref());
        }
        if batch.len() < events || json != uncertain.json {
            log::warn!(
                "osprofiler: a batch retried on Redis changed; {events} notifications may be stored twice"
            );
            return Ok(0);
        }
        if uncertain.sent_events > 0 {
            let committed: Option<u64> = self.with_connection(|connection| {
                redis::cmd("GET")
                    .arg(&self.writer_marker)
                    .query(connection)
                    .map_err(|e| self.error("reading the commit marker failed", e))
            })?;
            if committed.is_some_and(|c| c >= uncertain.sequence) {
                uncertain.stored_events = events;
                uncertain.stored_bytes = uncertain.json.len();
            } else {
                uncertain.json.truncate(uncertain.stored_bytes);
            }
            uncertain.sent_events = 0;
        }
        Ok(uncertain.stored_events)
    }

    fn error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::backend(
            NAME,
            format!("{what} ({}): {e}", redact_secrets(&self.connection_string)),
        )
    }

    fn connect(&self) -> Result<Connection> {
        match &self.endpoint {
            Endpoint::Direct(info) => {
                open(info.clone(), CONNECT_TIMEOUT).map_err(|e| self.error("cannot connect", e))
            }
            Endpoint::Sentinel {
                sentinels,
                service_name,
                master,
                timeout,
            } => {
                let mut last_error = String::from("no sentinel address");
                for (host, port) in sentinels {
                    match ask_sentinel(host, *port, service_name, *timeout) {
                        Ok(Some((master_host, master_port))) => {
                            let info = ConnectionInfo {
                                addr: ConnectionAddr::Tcp(master_host.clone(), master_port),
                                redis: master.clone(),
                            };
                            return open(info, CONNECT_TIMEOUT.max(*timeout)).map_err(|e| {
                                self.error(&format!("cannot connect to master {master_host}:{master_port} of {service_name:?}"), e)
                            });
                        }
                        Ok(None) => {
                            last_error = format!(
                                "sentinel {host}:{port} knows no master named {service_name:?}"
                            )
                        }
                        Err(e) => last_error = format!("sentinel {host}:{port}: {e}"),
                    }
                }
                Err(self.error("cannot find the master", last_error))
            }
        }
    }

    /// Runs `work` on the connection, opening it first if needed; drops the
    /// connection when `work` fails, so the next call reconnects.
    fn with_connection<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        self.connection.with(|| self.connect(), work)
    }

    /// Keys matching `pattern`, each once, via `SCAN` (never `KEYS`).
    fn scan(&self, connection: &mut Connection, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .cursor_arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query(connection)
                .map_err(|e| self.error("SCAN failed", e))?;
            for key in batch {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Runs one command per key (`GET key` or `LINDEX key 1`), pipelined,
    /// and returns the JSON objects among the replies, in key order. Keys
    /// gone, of another type, or holding something other than a JSON object
    /// are skipped.
    fn fetch_objects(
        &self,
        connection: &mut Connection,
        keys: &[Vec<u8>],
        command: &str,
    ) -> Result<Vec<Map<String, Json>>> {
        let texts = self.fetch_texts(connection, keys, command)?;
        Ok(texts.into_iter().filter_map(json_object).collect())
    }

    /// The bulk-string replies of one command per key, pipelined in
    /// batches; keys gone or of another type give nothing.
    fn fetch_texts(
        &self,
        connection: &mut Connection,
        keys: &[Vec<u8>],
        command: &str,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_COUNT) {
            let mut pipe = redis::pipe();
            for key in chunk {
                let cmd = pipe.cmd(command).arg(key);
                if command == "LINDEX" {
                    cmd.arg(1);
                }
            }
            let replies = run_pipeline(connection, &pipe)
                .map_err(|e| self.error(&format!("{command} failed"), e))?;
            out.extend(replies.into_iter().filter_map(bulk_string));
        }
        Ok(out)
    }

    /// The JSON texts of one trace, unparsed: legacy keys first, then the
    /// list, as Python's `get_report` reads them.
    fn event_texts(&self, base_id: &str) -> Result<Vec<Vec<u8>>> {
        self.with_connection(|connection| {
            let legacy = self.scan(
                connection,
                &format!("{NAMESPACE_LEGACY}{}*", glob_escape(base_id)),
            )?;
            let mut texts = self.fetch_texts(connection, &legacy, "GET")?;
            // One LRANGE for the whole list: a single round trip, and a
            // consistent view while writers keep pushing.
            let list: Vec<Value> = match redis::cmd("LRANGE")
                .arg(format!("{NAMESPACE_OPT}{base_id}"))
                .arg(0)
                .arg(-1)
                .query::<Value>(connection)
            {
                Ok(Value::Array(items)) => items,
                Ok(_) => Vec::new(),
                // The key holds something else than a list: no events there.
                Err(e) if e.code() == Some("WRONGTYPE") => Vec::new(),
                Err(e) => return Err(self.error("LRANGE failed", e)),
            };
            texts.reserve(list.len());
            texts.extend(list.into_iter().filter_map(bulk_string));
            Ok(texts)
        })
    }
}

/// Opens a connection with a connect timeout and read/write timeouts.
fn open(info: ConnectionInfo, connect_timeout: Duration) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(info)?;
    let connection = client.get_connection_with_timeout(connect_timeout)?;
    connection.set_read_timeout(Some(IO_TIMEOUT))?;
    connection.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(connection)
}

/// `SENTINEL get-master-addr-by-name`: the master's address, or `None` when
/// the sentinel does not know the service.
fn ask_sentinel(
    host: &str,
    port: u16,
    service_name: &str,
    timeout: Duration,
) -> redis::RedisResult<Option<(String, u16)>> {
    let info = ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.to_string(), port),
        redis: RedisConnectionInfo::default(),
    };
    let client = redis::Client::open(info)?;
    let mut connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    let reply: Option<(String, String)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(service_name)
        .query(&mut connection)?;
    Ok(reply.and_then(|(h, p)| Some((h, p.parse().ok()?))))
}

fn parse_sentinel(connection_string: &str, conf: &ProfilerConfig) -> Result<Endpoint, String> {
    let rest = connection_string.split_once("://").map_or("", |(_, r)| r);
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let mut master = RedisConnectionInfo::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            master.username = Some(percent_decode(user));
        }
        master.password = password.filter(|p| !p.is_empty()).map(percent_decode);
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let db = path.trim_start_matches('/');
    if !db.is_empty() {
        master.db = db
            .parse()
            .map_err(|_| format!("invalid database number {db:?}"))?;
    }
    let mut sentinels = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = split_host_port(host)?;
        sentinels.push((name, port.unwrap_or(DEFAULT_SENTINEL_PORT)));
    }
    if sentinels.is_empty() {
        return Err("no sentinel host".into());
    }
    let timeout = if conf.socket_timeout.is_finite() && conf.socket_timeout > 0.0 {
        Duration::from_secs_f64(conf.socket_timeout.min(3600.0))
    } else {
        Duration::from_millis(100)
    };
    Ok(Endpoint::Sentinel {
        sentinels,
        service_name: conf.sentinel_service_name.clone(),
        master,
        timeout,
    })
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let bad_port = |p: &str| format!("invalid port {p:?}");
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid host {text:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad_port(p))?),
            None if after.is_empty() => None,
            None => return Err(format!("invalid host {text:?}")),
        };
        return Ok((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_string(), Some(p.parse().map_err(|_| bad_port(p))?))),
        None => Ok((text.to_string(), None)),
    }
}

/// Sends a pipeline (not a transaction) and returns one reply per command;
/// a command's error reply is returned in its place, not as an `Err`.
fn run_pipeline(
    connection: &mut Connection,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<Value>> {
    if pipe.is_empty() {
        return Ok(Vec::new());
    }
    connection.req_packed_commands(&pipe.get_packed_pipeline(), 0, pipe.len())
}

/// The bytes of a bulk-string reply; anything else (nil) is nothing.
fn bulk_string(reply: Value) -> Option<Vec<u8>> {
    match reply {
        Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}

/// A JSON object out of stored text; anything else is skipped.
fn json_object(text: Vec<u8>) -> Option<Map<String, Json>> {
    match serde_json::from_slice(&text) {
        Ok(Json::Object(map)) => Some(map),
        _ => {
            log::debug!("osprofiler: skipping a Redis value that is not a JSON object");
            None
        }
    }
}

/// Escapes the glob characters of `SCAN MATCH` patterns.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Sorts by `timestamp` (as text, like Python) and keeps the first entry of
/// each `base_id`. Entries missing either are skipped.
fn first_per_base_id(mut entries: Vec<Map<String, Json>>) -> Vec<Map<String, Json>> {
    entries.retain(|e| {
        e.get("base_id").is_some_and(Json::is_string)
            && e.get("timestamp").is_some_and(Json::is_string)
    });
    entries.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    let mut seen = HashSet::new();
    entries.retain(|e| seen.insert(e["base_id"].as_str().unwrap_or_default().to_string()));
    entries
}

fn select_fields(entry: Map<String, Json>, fields: &[&str]) -> Map<String, Json> {
    entry
        .into_iter()
        .filter(|(k, _)| fields.contains(&k.as_str()))
        .collect()
}

impl Driver for RedisDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn notify(&self, batch: &[Notification]) -> Result<()> {
        let batch: Vec<Event<'_>> = batch.iter().map(Event::from).collect();
        self.notify_events(&batch)
    }

    fn notify_events(&self, batch: &[Event<'_>]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = writes.uncertain.take();
        let skip = match known.as_mut() {
            None => 0,
            Some(uncertain) => match self.already_stored(uncertain, batch) {
                Ok(skip) => skip,
                Err(e) => {
                    writes.uncertain = known;
                    return Err(e);
                }
            },
        };
        // Events Redis has are left out; a prefix that no longer matches
        // (skip 0) is forgotten.
        let mut stored_json = match known {
            Some(uncertain) if skip > 0 => uncertain.json,
            _ => Vec::new(),
        };
        let batch_all = batch;
        let batch = &batch[skip..];
        if batch.is_empty() {
            return Ok(());
        }
        // Group by trace, keeping the order of arrival: one variadic LPUSH
        // per trace leaves each list exactly as one LPUSH per event would.
        // Payloads are written into one buffer; `traces` holds their ranges.
        let mut json = Vec::with_capacity(batch.len() * 400);
        let mut traces: Vec<(Text<'_>, Vec<std::ops::Range<usize>>)> = Vec::new();
        let mut errors: Vec<(Text<'_>, Text<'_>)> = Vec::new();
        for event in batch {
            let start = json.len();
            event.write_json(&mut json, self.project.as_deref(), self.service.as_deref());
            let base_id = event.base_id();
            // A batch usually holds a few traces: the latest one is the
            // likely match.
            match traces.iter_mut().rev().find(|(id, _)| **id == *base_id) {
                Some((_, values)) => values.push(start..json.len()),
                None => {
                    let mut values = Vec::with_capacity(8);
                    values.push(start..json.len());
                    traces.push((base_id, values));
                }
            }
            if self.filter_error_trace && event.is_error() {
                let base_id = event.base_id();
                match errors.iter_mut().find(|(id, _)| **id == *base_id) {
                    Some(entry) => entry.1 = event.timestamp(),
                    None => errors.push((base_id, event.timestamp())),
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (base_id, values) in &traces {
            let key = format!("{NAMESPACE_OPT}{}", &**base_id);
            let command = pipe.cmd("LPUSH").arg(&key);
            for range in values {
                command.arg(&json[range.clone()]);
            }
            if let Some(ttl) = self.ttl_seconds {
                pipe.cmd("EXPIRE").arg(&key).arg(ttl);
            }
        }
        for (base_id, timestamp) in &errors {
            let mut entry = Map::new();
            entry.insert("base_id".into(), Json::from(&**base_id));
            entry.insert("timestamp".into(), Json::from(&**timestamp));
            let value = Json::Object(entry).to_string();
            let cmd = pipe
                .cmd("SET")
                .arg(format!("{NAMESPACE_ERROR}{}", &**base_id))
                .arg(value);
            if let Some(ttl) = self.ttl_seconds {
                cmd.arg("EX").arg(ttl);
            }
        }
        writes.sequence += 1;
        let sequence = writes.sequence;
        pipe.cmd("SET")
            .arg(&self.writer_marker)
            .arg(sequence)
            .arg("EX")
            .arg(WRITER_MARKER_TTL_SECONDS);
        let commands = pipe.len();
        let sent = self.with_connection(|connection| {
            // Replies: OK to MULTI, QUEUED per command, then EXEC's array.
            // An error while queueing (OOM, READONLY after a failover, ...)
            // aborts the whole transaction and comes back as `Err`.
            connection
                .req_packed_commands(&pipe.get_packed_pipeline(), commands + 1, 1)
                .map_err(|e| self.error("write failed", e))
        });
        let replies = match sent {
            Ok(replies) => replies,
            Err(e) => {
                // Whether Redis applied it is unknown: the retry reads the
                // marker to find out.
                let stored_bytes = stored_json.len();
                stored_json.extend_from_slice(&json);
                writes.uncertain = Some(Uncertain {
                    json: stored_json,
                    stored_events: skip,
                    stored_bytes,
                    sent_events: batch.len(),
                    sequence,
                });
                return Err(e);
            }
        };
        // Errors of single commands inside EXEC (e.g. WRONGTYPE: the key is
        // not a list) cannot succeed on retry, and the other commands were
        // applied: log and report success so they are not stored twice.
        if let Some(Value::Array(results)) = replies.into_iter().next() {
            for result in results {
                if let Value::ServerError(e) = result {
                    let e: redis::RedisError = e.into();
                    log::warn!(
                        "osprofiler: Redis rejected part of a batch of {} notifications: {e}",
                        batch_all.len()
                    );
                }
            }
        }
        Ok(())
    }

    fn get_events(&self, base_id: &str) -> Result<Vec<Json>> {
        let texts = self.event_texts(base_id)?;
        Ok(texts
            .into_iter()
            .filter_map(json_object)
            .map(Json::Object)
            .collect())
    }

    /// Builds the report from the stored texts without parsing them into
    /// JSON trees ([`report::build_from_json`]); texts that are not usable
    /// events are counted in [`Report::skipped`].
    ///
    /// [`report::build_from_json`]: crate::report::build_from_json
    /// [`Report::skipped`]: crate::report::Report::skipped
    fn get_report(&self, base_id: &str) -> Result<crate::report::Report> {
        Ok(crate::report::build_from_json(self.event_texts(base_id)?))
    }

    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Json>>> {
        let fields: &[&str] = if fields.is_empty() {
            &["base_id", "timestamp"]
        } else {
            fields
        };
        self.with_connection(|connection| {
            // Legacy events first: the earliest event of each trace.
            let legacy_keys = self.scan(connection, &format!("{NAMESPACE_LEGACY}*"))?;
            let legacy = self.fetch_objects(connection, &legacy_keys, "GET")?;
            let mut result: Vec<_> = first_per_base_id(legacy)
                .into_iter()
                .map(|e| select_fields(e, fields))
                .collect();
            // Lists: like Python, the element at index 1 of each (the second
            // newest event; lists with a single event are not listed).
            let lists = self.scan(connection, &format!("{NAMESPACE_OPT}*"))?;
            let seconds = self.fetch_objects(connection, &lists, "LINDEX")?;
            result.extend(seconds.into_iter().map(|e| select_fields(e, fields)));
            Ok(result)
        })
    }

    fn list_error_traces(&self) -> Result<Vec<Map<String, Json>>> {
        self.with_connection(|connection| {
            let keys = self.scan(connection, &format!("{NAMESPACE_ERROR}*"))?;
            let entries = self.fetch_objects(connection, &keys, "GET")?;
            Ok(first_per_base_id(entries))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let conf = ProfilerConfig::default();
        let Endpoint::Sentinel {
            sentinels,
            service_name,
            master,
            timeout,
        } = parse_sentinel("redissentinel://:p%40ss@s1:5000,[::1],s3/2", &conf).unwrap()
        else {
            panic!("not a sentinel endpoint")
        };
        assert_eq!(
            sentinels,
            [
                ("s1".to_string(), 5000),
                ("::1".to_string(), 26379),
                ("s3".to_string(), 26379)
            ]
        );
        assert_eq!(service_name, "mymaster");
        assert_eq!(master.password.as_deref(), Some("p@ss"));
        assert_eq!(master.username, None);
        assert_eq!(master.db, 2);
        assert_eq!(timeout, Duration::from_millis(100));
        assert!(parse_sentinel("redissentinel://", &conf).is_err());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz%"), "A%zz%");
        assert!(parse_sentinel("redissentinel://h:notaport", &conf).is_err());
    }

    #[test]
    fn bad_connection_strings_are_errors_without_passwords() {
        let conf = ProfilerConfig::default();
        let err = RedisDriver::new("redis://:secret@h:99999", None, None, &conf).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let driver =
            RedisDriver::new("redis://:secret@127.0.0.1:6379/3", None, None, &conf).unwrap();
        assert!(!format!("{driver:?}").contains("secret"));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn error_index_keeps_the_earliest_entry_per_trace() {
        let e = |b: &str, t: &str| {
            Map::from_iter([
                ("base_id".to_string(), Json::from(b)),
                ("timestamp".to_string(), Json::from(t)),
            ])
        };
        let got = first_per_base_id(vec![e("b", "2"), e("a", "3"), e("b", "1"), Map::new()]);
        assert_eq!(got, vec![e("b", "1"), e("a", "3")]);
    }
}
