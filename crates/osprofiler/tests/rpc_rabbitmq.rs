//! RPC propagation through a real RabbitMQ (127.0.0.1:5672, guest/guest):
//! the publisher puts its trace into the message context as
//! oslo.messaging services do, the consumer continues it.

mod common {
    pub mod python;
    pub mod tree;
}
mod servers;

use std::time::Duration;

use common::tree;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use osprofiler::drivers::MemoryDriver;
use osprofiler::profiler::{self, Trace};
use osprofiler::{notifier, rpc};
use serde_json::{json, Map, Value};
use serial_test::serial;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn channel() -> (Connection, Channel) {
    servers::require("RabbitMQ", "127.0.0.1:5672");
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ at {AMQP_URL} refused the connection ({e}); start it with scripts/services")
        });
    let channel = connection.create_channel().await.expect("RabbitMQ channel");
    (connection, channel)
}

/// The RPC server's handler: what an oslo.messaging endpoint would run.
/// Returns whether it ran inside a trace.
async fn handle(payload: Value) -> bool {
    let traced = profiler::is_active();
    let _rpc = Trace::new(
        "rpc",
        Some(json!({"rpc": {"method": payload["method"].clone()}})),
    );
    tokio::task::yield_now().await;
    {
        let _db = Trace::new("db", Some(json!({"db": {"statement": "UPDATE instances"}})));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    traced
}

/// Consumes `count` messages from `queue`, each `{"context", "payload"}`,
/// running [`handle`] in the trace of its context; returns what each saw.
async fn consume(channel: Channel, queue: String, count: usize) -> Vec<bool> {
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "osprofiler-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic_consume");
    let mut seen = Vec::new();
    while seen.len() < count {
        let delivery = consumer
            .next()
            .await
            .expect("consumer ended")
            .expect("delivery");
        let message: Value = serde_json::from_slice(&delivery.data).expect("JSON message");
        let context: Map<String, Value> =
            message["context"].as_object().cloned().unwrap_or_default();
        seen.push(rpc::in_context(&context, handle(message["payload"].clone())).await);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    seen
}

async fn publish(channel: &Channel, queue: &str, context: Map<String, Value>, method: &str) {
    let body = json!({"context": context, "payload": {"method": method}});
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&body).unwrap(),
            BasicProperties::default(),
        )
        .await
        .expect("basic_publish")
        .await
        .expect("publish confirmation");
}

#[test]
#[serial]
fn consumer_continues_the_publishers_trace() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let queue = servers::unique("osprofiler_rpc_");

    let (base_id, seen) = runtime.block_on(async {
        let (connection, publisher) = channel().await;
        publisher
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue_declare");
        let consumer_channel = connection.create_channel().await.expect("channel");
        // The consumer runs in its own task, with no profiler of its own.
        let consumer = tokio::spawn(consume(consumer_channel, queue.clone(), 3));

        let base_id = profiler::scope(async {
            let p = profiler::init("SECRET_KEY", None, None);
            let _api = Trace::new("compute-api", None);
            let mut context = Map::new();
            context.insert("user_id".into(), json!("admin"));
            assert!(rpc::inject(&mut context));
            assert_eq!(
                context["trace_info"]["parent_id"],
                profiler::get().unwrap().id()
            );
            publish(&publisher, &queue, context, "reboot").await;
            p.base_id()
        })
        .await;

        // No trace, then a forged one: both handled untraced.
        publish(&publisher, &queue, Map::new(), "untraced").await;
        let mut forged = Map::new();
        forged.insert(
            "trace_info".into(),
            json!({"hmac_key": "k", "base_id": base_id, "parent_id": "p", "x": 1}),
        );
        publish(&publisher, &queue, forged, "forged").await;

        let seen = tokio::time::timeout(Duration::from_secs(30), consumer)
            .await
            .expect("RabbitMQ did not deliver the messages within 30 s")
            .expect("consumer task");
        let _ = publisher
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        let _ = connection.close(200, "done".into()).await;
        (base_id, seen)
    });
    notifier::flush(Duration::from_secs(5)).unwrap();
    assert_eq!(seen, [true, false, false]);

    let payloads = store.payloads();
    assert_eq!(
        tree::render(&payloads, &base_id),
        "compute-api\n  rpc\n    db\n"
    );
    let api = tree::only(&payloads, &base_id, "compute-api");
    let rpc_element = tree::only(&payloads, &base_id, "rpc");
    assert_eq!(
        rpc_element.parent_id,
        api.start["trace_id"].as_str().unwrap()
    );
    assert_eq!(rpc_element.start["info"]["rpc"]["method"], "reboot");
    // Nothing else was recorded: the untraced handlers made no payloads.
    assert_eq!(payloads.len(), 6, "{payloads:#?}");
}

/// The same `trace_info` with Python osprofiler 4.4.0 on the other end, in
/// both directions: a Python service continues our trace and hands it on,
/// and we continue the context it serialized.
#[test]
#[serial]
fn python_services_read_and_write_the_same_trace_info() {
    let store = MemoryDriver::new();
    notifier::set(store.clone());

    profiler::clean();
    let p = profiler::init("SECRET_KEY", None, None);
    let mut context = Map::new();
    context.insert("user_id".into(), json!("admin"));
    let sender_id = {
        let _api = Trace::new("compute-api", None);
        assert!(rpc::inject(&mut context));
        profiler::get().unwrap().id()
    };
    profiler::clean();

    let answers =
        common::python::run_json_lines("rpc_referee.py", &[], &[Value::Object(context.clone())]);
    let python_payloads: Vec<Value> = answers[0]["payloads"].as_array().unwrap().clone();
    let next: Map<String, Value> = answers[0]["next_context"].as_object().unwrap().clone();
    assert_eq!(next["user_id"], "admin");

    // Python's `rpc` element is a child of ours, in our trace.
    let python_rpc = tree::only(&python_payloads, &p.base_id(), "rpc");
    assert_eq!(python_rpc.parent_id, sender_id);

    // And its serialized context continues in Rust under its element.
    let trace = rpc::extract(&next).expect("Python's trace_info is accepted");
    assert_eq!(trace.base_id(), p.base_id());
    assert_eq!(trace.id(), python_rpc.start["trace_id"].as_str().unwrap());
    {
        let _entered = trace.enter();
        let _conductor = Trace::new("conductor", None);
    }
    notifier::flush(Duration::from_secs(5)).unwrap();
    let all: Vec<Value> = store
        .payloads()
        .into_iter()
        .chain(python_payloads)
        .collect();
    assert_eq!(
        tree::render(&all, &p.base_id()),
        "compute-api\n  rpc\n    conductor\n"
    );
}
