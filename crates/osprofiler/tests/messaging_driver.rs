//! The messaging:// driver against the real RabbitMQ (127.0.0.1:5672,
//! guest/guest; each test in its own vhost) and the real Python
//! osprofiler 4.4.0 / oslo.messaging in `.venv`:
//! - Python's `trace show` shows what our notifier pipeline publishes;
//! - we read what Python's oslo.messaging notifier publishes, with the
//!   report Python's own code builds, and leave other traces queued;
//! - the wire format (exchange, routing key, properties, body layout) is
//!   oslo's;
//! - an existing durable exchange/queue is adopted;
//! - a RabbitMQ restart (`stop_app`/`start_app` of a private node) loses
//!   no event.
#![cfg(feature = "messaging")]

mod common {
    pub mod rabbitmq;
}
mod servers;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rabbitmq::{self, Vhost};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver, MemoryDriver, MessagingDriver};
use osprofiler::profiler::{self, Trace};
use osprofiler::{notifier, report, Notification};
use serde_json::{json, Map, Value};
use serial_test::serial;

fn conf(url: &str, idle: u64) -> ProfilerConfig {
    let mut conf = ProfilerConfig::default().with_transport_url(url);
    conf.idle_timeout_seconds = idle;
    conf
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Every message in `profiler.info` of `amqp_url`, taken (acked) with
/// `basic.get`: (exchange, routing key, properties, body).
fn drain(amqp_url: &str) -> Vec<(String, String, lapin::BasicProperties, Vec<u8>)> {
    block_on(async {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(message) = channel
            .basic_get("profiler.info".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let d = message.delivery;
            out.push((
                d.exchange.to_string(),
                d.routing_key.to_string(),
                d.properties,
                d.data,
            ));
        }
        let _ = connection.close(200, "bye".into()).await;
        out
    })
}

/// `.venv/bin/osprofiler trace show --json` over messaging://.
fn python_show(transport_url: &str, base_id: &str) -> Value {
    let out = Command::new(servers::venv_bin("osprofiler"))
        .args([
            "trace",
            "show",
            "--json",
            "--connection-string",
            "messaging://",
            "--transport-url",
            transport_url,
            "--idle-timeout",
            "2",
            base_id,
        ])
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run the Python osprofiler CLI");
    assert!(
        out.status.success(),
        "Python's trace show failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from Python's trace show")
}

/// Publishes `count` traces with Python's messaging:// driver; returns
/// `{"base_id", "payloads", "report"}` for each.
fn python_publish(transport_url: &str, count: usize) -> Vec<Value> {
    servers::run_python(
        "messaging_interop.py",
        &["publish", transport_url, &count.to_string()],
    )
    .lines()
    .map(|line| serde_json::from_str(line).expect("JSON line"))
    .collect()
}

/// Sends each batch to both drivers (the second one keeps a copy of what
/// was published).
#[derive(Debug)]
struct Tee(Arc<dyn Driver>, MemoryDriver);

impl Driver for Tee {
    fn name(&self) -> &'static str {
        "tee"
    }
    fn notify(&self, batch: &[Notification]) -> osprofiler::Result<()> {
        self.0.notify(batch)?;
        self.1.notify(batch)
    }
}

/// (a) A trace recorded through the real pipeline (`notifier::set`,
/// profiler start/stop, collector thread, flush) is shown by Python's
/// `osprofiler trace show --json` with the tree, stats and raw payloads our
/// own report builder makes of the published payloads.
#[test]
#[serial]
fn python_cli_shows_our_traces() {
    let vhost = Vhost::new("pipeline");
    let url = vhost.transport_url();
    let driver = get_driver(
        "messaging://",
        Some("rustproj"),
        Some("rustsvc"),
        Some("rusthost"),
        &conf(&url, 1),
    )
    .unwrap();
    let copy = MemoryDriver::with_identity(Some("rustproj"), Some("rustsvc"));
    notifier::set(Tee(driver, copy.clone()));

    let base_id = profiler::init("SECRET_KEY", None, None).base_id();
    {
        let _wsgi = Trace::new(
            "wsgi",
            Some(json!({"request": {"path": "/v2/servers", "method": "GET", "query": "é"}})),
        );
        {
            let _db = Trace::new("db", Some(json!({"db": {"statement": "SELECT 1"}})));
            std::thread::sleep(Duration::from_millis(3));
        }
        {
            let mut compute = Trace::new("compute", None);
            std::thread::sleep(Duration::from_millis(2));
            compute.error(&std::io::Error::other("disk full"));
        }
    }
    profiler::clean();
    notifier::flush(Duration::from_secs(20)).expect("flush to RabbitMQ");
    notifier::reset();
    assert_eq!(vhost.queue_length().unwrap_or(6), 6);

    let shown = python_show(&url, &base_id);
    assert_eq!(shown["info"]["name"], "total");
    let wsgi = &shown["children"][0];
    assert_eq!(shown["children"].as_array().unwrap().len(), 1);
    assert_eq!(wsgi["info"]["name"], "wsgi");
    assert_eq!(wsgi["info"]["project"], "rustproj");
    assert_eq!(wsgi["info"]["service"], "rustsvc");
    assert_eq!(wsgi["parent_id"], base_id.as_str());
    let children: Vec<&str> = wsgi["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["info"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["db", "compute"]);
    assert_ne!(wsgi["children"][1]["info"]["exception"], "None");
    assert_eq!(
        wsgi["info"]["meta.raw_payload.wsgi-start"]["info"]["request"]["query"],
        "é"
    );
    for name in ["wsgi", "db", "compute"] {
        assert_eq!(shown["stats"][name]["count"], 1, "{}", shown["stats"]);
    }
    assert!(shown["stats"]["db"]["duration"].as_i64().unwrap() >= 3);

    let published = copy.payloads();
    assert_eq!(published.len(), 6);
    assert_eq!(shown, report::build(published).to_value());
    // Python's reader took everything.
    assert_eq!(vhost.queue_length().unwrap_or(0), 0);
}

/// (b) Traces published by Python's oslo.messaging notifier are read by
/// our driver with the report Python's own `_parse_results` builds for
/// them (kombu type tags included); (c) reading one trace leaves the other
/// in the queue, complete and in order.
#[test]
fn reads_python_traces_and_leaves_the_others_queued() {
    let vhost = Vhost::new("pyread");
    let url = vhost.transport_url();
    let traces = python_publish(&url, 2);
    let (a, b) = (&traces[0], &traces[1]);
    assert_eq!(vhost.queue_length().unwrap_or(12), 12);
    let driver = MessagingDriver::new("messaging://", None, None, None, &conf(&url, 1)).unwrap();

    let started = Instant::now();
    let report = driver.get_report(b["base_id"].as_str().unwrap()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(report.skipped(), 0);
    assert_eq!(report.to_value(), b["report"]);
    assert_eq!(driver.skipped_messages(), 0);
    // A's six messages are back, in the order Python published them.
    assert_eq!(vhost.queue_length().unwrap_or(6), 6);
    // (Compared without `info`: on the wire kombu tags the datetimes.)
    let key = |p: &Value| {
        (
            p["name"].clone(),
            p["trace_id"].clone(),
            p["timestamp"].clone(),
        )
    };
    let left: Vec<_> = drain(&vhost.amqp_url())
        .iter()
        .map(|(_, _, _, body)| key(&serde_json::from_slice::<Value>(body).unwrap()["payload"]))
        .collect();
    let published: Vec<_> = a["payloads"].as_array().unwrap().iter().map(key).collect();
    assert_eq!(left, published);
}

/// Our messages are oslo's: same exchange, routing key and properties as a
/// message Python's notifier sends, body keys in the same order, the
/// payload with the same keys.
#[test]
fn wire_format_matches_oslo_messaging() {
    let vhost = Vhost::new("wire");
    let url = vhost.transport_url();
    python_publish(&url, 1);
    let driver = MessagingDriver::new(
        "messaging://",
        Some("p"),
        Some("s"),
        Some("h"),
        &conf(&url, 1),
    )
    .unwrap();
    let n = Notification {
        name: "rust-start".into(),
        base_id: "b".into(),
        trace_id: "t".into(),
        parent_id: "b".into(),
        timestamp: "2026-11-21T09:33:13.503640".into(),
        info: Some(Map::from_iter([("host".to_string(), json!("h"))])),
    };
    driver.notify(std::slice::from_ref(&n)).unwrap();
    let messages = drain(&vhost.amqp_url());
    assert_eq!(messages.len(), 7);
    let python = &messages[0];
    let ours = &messages[6];
    assert_eq!(
        (ours.0.as_str(), ours.1.as_str()),
        ("openstack", "profiler.info")
    );
    assert_eq!((&python.0, &python.1), (&ours.0, &ours.1));
    assert_eq!(python.2, ours.2, "AMQP properties differ");
    let p = &ours.2;
    assert_eq!(
        p.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(0));
    assert_eq!(p.headers().as_ref().map(|h| h.inner().len()), Some(0));
    assert!(p.message_id().is_none() && p.timestamp().is_none());

    let body: Map<String, Value> = serde_json::from_slice(&ours.3).unwrap();
    let python_body: Map<String, Value> = serde_json::from_slice(&python.3).unwrap();
    let keys = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&body), keys(&python_body));
    let payload_keys = |m: &Map<String, Value>| keys(m["payload"].as_object().unwrap());
    assert_eq!(payload_keys(&body), payload_keys(&python_body));
    // Byte for byte what kombu's json.dumps makes of the same dict.
    assert_eq!(
        String::from_utf8(ours.3.clone()).unwrap(),
        driver.message_body(&n)
    );
    assert!(String::from_utf8_lossy(&python.3).contains("\"priority\": \"INFO\", \"payload\": {"));
    assert!(String::from_utf8_lossy(&ours.3).contains("\"priority\": \"INFO\", \"payload\": {"));
}

/// An `openstack` exchange and `profiler.info` queue that already exist as
/// durable (services with `amqp_durable_queues = true`) are used as they
/// are: publishing and reading work, nothing is redeclared differently.
#[test]
fn adopts_an_existing_durable_exchange_and_queue() {
    let vhost = Vhost::new("durable");
    block_on(async {
        let connection = Connection::connect(&vhost.amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                "openstack".into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(100_000));
        channel
            .queue_declare("profiler.info".into(), QueueDeclareOptions::durable(), args)
            .await
            .unwrap();
        channel
            .queue_bind(
                "profiler.info".into(),
                "openstack".into(),
                "profiler.info".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = connection.close(200, "bye".into()).await;
    });
    let url = vhost.transport_url();
    let driver =
        MessagingDriver::new("messaging://", Some("p"), Some("s"), None, &conf(&url, 1)).unwrap();
    let batch: Vec<Notification> = ["x-start", "x-stop"]
        .iter()
        .enumerate()
        .map(|(i, name)| Notification {
            name: name.to_string(),
            base_id: "durable-base".into(),
            trace_id: "t".into(),
            parent_id: "durable-base".into(),
            timestamp: format!("2026-01-01T00:00:0{i}.000000"),
            info: Some(Map::from_iter([("host".to_string(), json!("h"))])),
        })
        .collect();
    driver.notify(&batch).unwrap();
    // The same batch again, as the collector re-sends it after a failure:
    // the copies carry the same ids and the reader drops them.
    driver.notify(&batch).unwrap();
    let events = driver.get_events("durable-base").unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let report = report::build(events).to_value();
    assert_eq!(report["children"][0]["info"]["finished"], 1000);
}

/// Without a broker, `notify` and reads fail within a few seconds, with
/// the password hidden.
#[test]
fn unreachable_broker_fails_fast() {
    let port = servers::free_port();
    let url = format!("rabbit://guest:s3cret@127.0.0.1:{port}/");
    let driver = MessagingDriver::new("messaging://", None, None, None, &conf(&url, 0)).unwrap();
    let started = Instant::now();
    let n = Notification {
        name: "a-start".into(),
        base_id: "b".into(),
        trace_id: "t".into(),
        parent_id: "b".into(),
        timestamp: "2026-01-01T00:00:00.000000".into(),
        info: None,
    };
    let err = driver.notify(&[n]).unwrap_err().to_string();
    assert!(err.contains("RabbitMQ") && !err.contains("s3cret"), "{err}");
    let err = driver.get_events("b").unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(matches!(
        driver.list_traces(&[]),
        Err(osprofiler::Error::Unsupported { .. })
    ));
}

/// A RabbitMQ node of our own (not the shared one), so it can be
/// restarted safely.
struct PrivateBroker {
    node: String,
    port: u16,
    home: PathBuf,
    child: Child,
}

const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

impl PrivateBroker {
    fn start() -> PrivateBroker {
        rabbitmq::require_rabbitmq();
        let server = PathBuf::from(RABBITMQ_BIN).join("rabbitmq-server");
        assert!(
            server.exists(),
            "{} is missing: the restart test starts a private RabbitMQ node with it",
            server.display()
        );
        let home = servers::temp_dir("osprofiler-rabbitmq-");
        std::fs::write(home.join("enabled_plugins"), "[].\n").unwrap();
        let port = servers::free_port();
        let node = format!("osprofiler_test_{}_{port}@localhost", std::process::id());
        let mut command = Command::new(&server);
        command
            .env("HOME", &home)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", servers::free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", home.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", home.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                home.join("enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", home.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", home.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start rabbitmq-server");
        let broker = PrivateBroker {
            node,
            port,
            home,
            child,
        };
        assert!(
            servers::wait_for_port(port, Duration::from_secs(50)),
            "the private RabbitMQ node did not start within 50 s (logs in {})",
            broker.home.join("log").display()
        );
        broker
    }

    fn ctl(&self, args: &[&str]) {
        let status = Command::new(PathBuf::from(RABBITMQ_BIN).join("rabbitmqctl"))
            .env("HOME", &self.home)
            .args(["-n", &self.node])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("run rabbitmqctl");
        assert!(status.success(), "rabbitmqctl {args:?} failed");
    }

    fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn transport_url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            // The whole process group: the shell wrapper and the Erlang VM.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// (d) RabbitMQ restarted (`stop_app` + `start_app`) while events flow
/// through the pipeline: every event recorded before, during and after the
/// outage reaches the queue (the collector keeps and retries the batches
/// while `notify` fails), none twice in what the reader returns.
#[test]
#[serial]
fn broker_restart_loses_nothing() {
    let broker = PrivateBroker::start();
    // Durable, as with `amqp_durable_queues = true`: messages confirmed
    // before the restart survive it (a transient queue would be deleted by
    // the restart whoever publishes).
    block_on(async {
        let connection = Connection::connect(&broker.amqp_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                "openstack".into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = connection.close(200, "bye".into()).await;
    });
    let url = broker.transport_url();
    let driver = get_driver("messaging://", Some("p"), Some("s"), None, &conf(&url, 2)).unwrap();
    notifier::set_shared(driver.clone());
    let failed_before = notifier::stats().failed;

    let base_id = servers::unique_uuid();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (stop, base_id) = (stop.clone(), base_id.clone());
        std::thread::spawn(move || {
            let mut spans = 0u64;
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                profiler::init("SECRET_KEY", Some(&base_id), None);
                {
                    let _span = Trace::new("op", Some(json!({"n": spans})));
                }
                profiler::clean();
                slowest = slowest.max(started.elapsed());
                spans += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            (spans, slowest)
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    broker.ctl(&["stop_app"]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        notifier::stats().failed > failed_before,
        "the collector never saw the outage: {:?}",
        notifier::stats()
    );
    broker.ctl(&["start_app"]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (spans, slowest) = producer.join().unwrap();
    assert!(
        slowest < Duration::from_millis(500),
        "traced code blocked for {slowest:?}"
    );
    notifier::flush(Duration::from_secs(30)).expect("everything delivered after the restart");
    notifier::reset();

    let events = driver.get_events(&base_id).unwrap();
    assert_eq!(events.len() as u64, 2 * spans, "events lost or duplicated");
    let report = report::build(events);
    assert_eq!(report.skipped(), 0);
    assert_eq!(report.len() as u64, spans);
}

/// Batches of 1,000 are published with one confirm wait each, and a reader
/// takes 5,000 events of one trace out of a queue that also holds another
/// trace's, leaving those.
#[test]
fn big_batches_round_trip() {
    let vhost = Vhost::new("batches");
    let url = vhost.transport_url();
    let driver =
        MessagingDriver::new("messaging://", Some("p"), Some("s"), None, &conf(&url, 1)).unwrap();
    let batch = |base_id: &str, offset: usize| -> Vec<Notification> {
        (0..1000)
            .map(|i| Notification {
                name: if i % 2 == 0 { "op-start" } else { "op-stop" }.into(),
                base_id: base_id.into(),
                trace_id: format!("t{}", (offset + i) / 2),
                parent_id: base_id.into(),
                timestamp: format!("2026-01-01T00:00:00.{:06}", offset + i),
                info: Some(Map::from_iter([("host".to_string(), json!("h"))])),
            })
            .collect()
    };
    let started = Instant::now();
    for round in 0..5 {
        driver.notify(&batch("big", round * 1000)).unwrap();
    }
    driver.notify(&batch("other", 0)).unwrap();
    let published = started.elapsed();
    eprintln!("published 6,000 messages in {published:?}");
    assert!(published < Duration::from_secs(30), "{published:?}");
    let started = Instant::now();
    let events = driver.get_events("big").unwrap();
    eprintln!("read 5,000 of 6,000 messages in {:?}", started.elapsed());
    assert_eq!(events.len(), 5000);
    assert_eq!(report::build(events).len(), 2500);
    assert_eq!(vhost.queue_length().unwrap_or(1000), 1000);
}
