//! The Redis driver against a real Redis (127.0.0.1:6379), and against
//! Python osprofiler 4.4.0 writing to the same Redis.
#![cfg(feature = "redis")]

mod servers;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{get_driver, Driver, RedisDriver};
use osprofiler::notification::Notification;
use serde_json::{json, Map, Value};

/// The tests use their own database number besides unique ids, so a
/// developer's traces in db 0 stay out of the way.
const REDIS: &str = "redis://127.0.0.1:6379/9";
/// Garbage that would crash Python's driver goes to another database.
const REDIS_GARBAGE: &str = "redis://127.0.0.1:6379/10";

fn conf(filter_error_trace: bool, ttl: Option<u64>) -> ProfilerConfig {
    let mut conf = ProfilerConfig::default();
    conf.filter_error_trace = filter_error_trace;
    conf.trace_ttl_seconds = ttl;
    conf
}

fn raw_connection() -> redis::Connection {
    connect(REDIS)
}

fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn event(name: &str, base: &str, trace: &str, parent: &str, ts: &str, info: Value) -> Notification {
    Notification {
        name: name.into(),
        base_id: base.into(),
        trace_id: trace.into(),
        parent_id: parent.into(),
        timestamp: ts.into(),
        info: info.as_object().cloned(),
    }
}

/// Deletes every key of these traces (both layouts and the error index).
fn cleanup(base_ids: &[&str]) {
    let mut con = raw_connection();
    for id in base_ids {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("osprofiler:{id}*"))
            .query(&mut con)
            .unwrap();
        keys.push(format!("osprofiler_opt:{id}"));
        keys.push(format!("osprofiler_error:{id}"));
        let _: () = redis::cmd("DEL").arg(keys).query(&mut con).unwrap();
    }
}

fn ids(entries: &[Map<String, Value>]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.get("base_id")?.as_str().map(String::from))
        .collect()
}

#[test]
fn round_trip_in_one_round_trip_per_batch() {
    servers::require_redis();
    let driver =
        RedisDriver::new(REDIS, Some("nova"), Some("api"), &conf(true, Some(600))).unwrap();
    let (a, b) = (servers::unique_uuid(), servers::unique_uuid());
    let (ta, tb) = (servers::unique_uuid(), servers::unique_uuid());
    let batch = vec![
        event(
            "wsgi-start",
            &a,
            &ta,
            &a,
            "2024-01-01T00:00:00.000001",
            json!({"host": "h", "u": "ünï ✓"}),
        ),
        event(
            "db-start",
            &b,
            &tb,
            &b,
            "2024-01-01T00:00:00.000002",
            json!({"host": "h"}),
        ),
        event(
            "db-stop",
            &b,
            &tb,
            &b,
            "2024-01-01T00:00:00.000003",
            json!({"host": "h", "etype": "E", "message": "m"}),
        ),
        event(
            "wsgi-stop",
            &a,
            &ta,
            &a,
            "2024-01-01T00:00:00.000004",
            json!({"host": "h"}),
        ),
    ];
    driver.notify(&batch).unwrap();

    // The lists are newest first, as with Python's one LPUSH per event.
    let stored_a = driver.get_events(&a).unwrap();
    assert_eq!(
        stored_a,
        vec![
            batch[3].to_value(Some("nova"), Some("api")),
            batch[0].to_value(Some("nova"), Some("api"))
        ]
    );
    assert_eq!(driver.get_events(&b).unwrap().len(), 2);
    assert_eq!(
        driver.get_events(&servers::unique_uuid()).unwrap(),
        Vec::<Value>::new()
    );

    // list_traces: index 1 of each list, i.e. the first event here.
    let traces = driver.list_traces(&[]).unwrap();
    let mine: Vec<_> = traces
        .iter()
        .filter(|t| t["base_id"] == a || t["base_id"] == b)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.contains(&&Map::from_iter([
        ("base_id".to_string(), json!(a)),
        ("timestamp".to_string(), json!("2024-01-01T00:00:00.000001"))
    ])));
    let named = driver.list_traces(&["name", "base_id"]).unwrap();
    let entry = named.iter().find(|t| t["base_id"] == b).unwrap();
    assert_eq!(
        Value::Object(entry.clone()),
        json!({"name": "db-start", "base_id": b})
    );

    // Only b has an error stop.
    let errors = driver.list_error_traces().unwrap();
    assert!(ids(&errors).contains(&b) && !ids(&errors).contains(&a));
    let error = errors.iter().find(|e| e["base_id"] == b).unwrap();
    assert_eq!(
        Value::Object(error.clone()),
        json!({"base_id": b, "timestamp": "2024-01-01T00:00:00.000003"})
    );

    // trace_ttl_seconds: both the list and the error index expire.
    let mut con = raw_connection();
    for key in [
        format!("osprofiler_opt:{a}"),
        format!("osprofiler_error:{b}"),
    ] {
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut con).unwrap();
        assert!((1..=600).contains(&ttl), "{key}: ttl {ttl}");
    }
    cleanup(&[&a, &b]);
}

#[test]
fn without_filter_error_trace_no_error_index_and_no_ttl() {
    servers::require_redis();
    let driver = get_driver(REDIS, None, None, None, &conf(false, None)).unwrap();
    assert_eq!(driver.name(), "redis");
    let a = servers::unique_uuid();
    let t = servers::unique_uuid();
    driver
        .notify(&[event(
            "x-stop",
            &a,
            &t,
            &a,
            "2024-01-01T00:00:00.000000",
            json!({"host": "h", "etype": "E"}),
        )])
        .unwrap();
    assert!(!ids(&driver.list_error_traces().unwrap()).contains(&a));
    // A single event: stored, but (like Python) not listed.
    assert_eq!(driver.get_events(&a).unwrap()[0]["project"], Value::Null);
    assert!(!ids(&driver.list_traces(&[]).unwrap()).contains(&a));
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("osprofiler_opt:{a}"))
        .query(&mut raw_connection())
        .unwrap();
    assert_eq!(ttl, -1);
    cleanup(&[&a]);
}

#[test]
fn corrupt_values_are_skipped() {
    servers::require_redis();
    let driver = RedisDriver::new(REDIS_GARBAGE, None, None, &ProfilerConfig::default()).unwrap();
    let a = servers::unique_uuid();
    let good = event(
        "x-start",
        &a,
        &a,
        &a,
        "2024-01-01T00:00:00.000000",
        json!({"host": "h"}),
    )
    .to_value(None, None);
    let mut con = connect(REDIS_GARBAGE);
    let key = format!("osprofiler_opt:{a}");
    let _: () = redis::cmd("RPUSH")
        .arg(&key)
        .arg(good.to_string())
        .arg("{not json")
        .arg("[1,2]")
        .arg(&b"\xff\xfe"[..])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("osprofiler:{a}_broken"))
        .arg("}{")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("osprofiler_error:{a}"))
        .arg("nope")
        .query(&mut con)
        .unwrap();
    assert_eq!(driver.get_events(&a).unwrap(), vec![good]);
    // Index 1 is corrupt: the trace is left out, nothing fails.
    assert!(!ids(&driver.list_traces(&[]).unwrap()).contains(&a));
    assert!(!ids(&driver.list_error_traces().unwrap()).contains(&a));
    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();

    // A key of the wrong type is no trace either.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("a string")
        .query(&mut con)
        .unwrap();
    assert_eq!(driver.get_events(&a).unwrap(), Vec::<Value>::new());
    assert!(!ids(&driver.list_traces(&[]).unwrap()).contains(&a));
    // Writing onto it is rejected by Redis for that key only: not retried.
    driver
        .notify(&[event(
            "x-start",
            &a,
            &a,
            &a,
            "2024-01-01T00:00:00.000000",
            json!({"host": "h"}),
        )])
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(format!("osprofiler:{a}_broken"))
        .arg(format!("osprofiler_error:{a}"))
        .query(&mut con)
        .unwrap();
}

#[test]
fn unreachable_redis_fails_fast_and_recovers() {
    let port = servers::free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let driver = RedisDriver::new(&url, None, None, &ProfilerConfig::default()).unwrap();
    let a = servers::unique_uuid();
    let batch = [event(
        "x-start",
        &a,
        &a,
        &a,
        "2024-01-01T00:00:00.000000",
        json!({"host": "h"}),
    )];
    let started = Instant::now();
    let err = driver.notify(&batch).unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("redis") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(driver.get_events(&a).is_err());

    // The same driver connects once the server is there.
    let _server = servers::RedisProcess::start(port, &["--requirepass", "hunter2"]);
    driver.notify(&batch).unwrap();
    assert_eq!(driver.get_events(&a).unwrap().len(), 1);
}

/// What the relay loses next: nothing, the next request (the connection
/// closes before Redis sees it) or the next reply (Redis ran it, the
/// client never hears back, as when Redis is killed after writing its AOF).
const PASS: u8 = 0;
const LOSE_REQUEST: u8 = 1;
const LOSE_REPLY: u8 = 2;

/// A TCP relay to the local Redis that loses one request or one reply on
/// demand, then closes that connection.
struct LossyRelay {
    port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl LossyRelay {
    fn start() -> LossyRelay {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicU8, Ordering};
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let shared = mode.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect("127.0.0.1:6379") else {
                    continue;
                };
                // Each direction copies until it is told to lose a chunk.
                let pipe = |mut from: TcpStream,
                            mut to: TcpStream,
                            lose: u8,
                            mode: Arc<AtomicU8>| {
                    move || {
                        let mut buf = vec![0u8; 1 << 16];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if mode
                                .compare_exchange(lose, PASS, Ordering::SeqCst, Ordering::SeqCst)
                                .is_ok()
                                || to.write_all(&buf[..n]).is_err()
                            {
                                break;
                            }
                        }
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    }
                };
                let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(pipe(c, s, LOSE_REQUEST, shared.clone()));
                std::thread::spawn(pipe(server, client, LOSE_REPLY, shared.clone()));
            }
        });
        LossyRelay { port, mode }
    }

    fn lose_next(&self, what: u8) {
        self.mode.store(what, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A retried batch is stored exactly once whether the failed attempt was
/// applied (its reply lost) or not (its request lost), and a retry that no
/// longer starts with the failed run is stored whole: nothing is lost.
#[test]
fn retried_batches_are_stored_once() {
    servers::require_redis();
    let relay = LossyRelay::start();
    let url = format!("redis://127.0.0.1:{}/9", relay.port);
    let driver = RedisDriver::new(&url, None, None, &ProfilerConfig::default()).unwrap();
    let a = servers::unique_uuid();
    let events: Vec<Notification> = (0..6)
        .map(|i| {
            event(
                &format!("e{i}-start"),
                &a,
                &servers::unique_uuid(),
                &a,
                &format!("2024-01-01T00:00:00.00000{i}"),
                json!({"host": "h"}),
            )
        })
        .collect();
    let stored = || -> Vec<String> {
        let mut names: Vec<String> = driver
            .get_events(&a)
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    // An open connection, so the next reply is the transaction's.
    driver.notify(&events[..1]).unwrap();

    // Applied, reply lost: the retry (the same run and more) adds only
    // what is new.
    relay.lose_next(LOSE_REPLY);
    assert!(driver.notify(&events[1..3]).is_err());
    assert_eq!(
        stored(),
        ["e0-start", "e1-start", "e2-start"],
        "the lost reply's transaction ran"
    );
    driver.notify(&events[1..4]).unwrap();
    assert_eq!(stored(), ["e0-start", "e1-start", "e2-start", "e3-start"]);

    // Not applied: the retry stores it.
    relay.lose_next(LOSE_REQUEST);
    assert!(driver.notify(&events[4..5]).is_err());
    assert_eq!(stored().len(), 4, "the lost request ran");
    driver.notify(&events[4..5]).unwrap();
    assert_eq!(stored().len(), 5);

    // Applied, and the retry's first attempt fails too (on connecting):
    // what it knew survives to the next retry.
    relay.lose_next(LOSE_REPLY);
    assert!(driver.notify(&events[5..6]).is_err());
    relay.lose_next(LOSE_REPLY);
    assert!(driver.notify(&events[5..6]).is_err());
    assert_eq!(stored().len(), 6);
    driver.notify(&events[5..6]).unwrap();
    assert_eq!(stored().len(), 6);

    // A retry that does not start with the failed run is sent whole:
    // stored twice, never lost.
    relay.lose_next(LOSE_REPLY);
    assert!(driver.notify(&events[5..6]).is_err());
    driver.notify(&events[4..6]).unwrap();
    let names = stored();
    assert_eq!(names.len(), 9, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "e5-start").count(), 3);
    cleanup(&[&a]);
}

#[test]
fn redis_sentinel_finds_the_master() {
    let master = servers::RedisProcess::start(servers::free_port(), &[]);
    let sentinel_port = servers::free_port();
    let dir = servers::temp_dir("osprofiler-sentinel-");
    let config = dir.join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor themaster 127.0.0.1 {} 1\n",
            dir.display(),
            master.port
        ),
    )
    .unwrap();
    let _sentinel = servers::RedisProcess::start_sentinel(sentinel_port, &config);

    let mut conf = conf(true, None);
    conf.sentinel_service_name = "themaster".into();
    conf.socket_timeout = 1.0;
    // The first sentinel listed is down: the next one is asked.
    let url = format!(
        "redissentinel://127.0.0.1:{},127.0.0.1:{sentinel_port}",
        servers::free_port()
    );
    let driver = get_driver(&url, Some("p"), Some("s"), None, &conf).unwrap();
    let a = servers::unique_uuid();
    driver
        .notify(&[event(
            "x-stop",
            &a,
            &a,
            &a,
            "2024-01-01T00:00:00.000000",
            json!({"host": "h", "etype": "E"}),
        )])
        .unwrap();
    let on_master: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("osprofiler_opt:{a}"))
        .arg(0)
        .arg(-1)
        .query(
            &mut redis::Client::open(format!("redis://127.0.0.1:{}", master.port))
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(on_master.len(), 1);
    assert_eq!(ids(&driver.list_error_traces().unwrap()), [a]);

    // An unknown service name is an error naming it.
    conf.sentinel_service_name = "nosuch".into();
    let driver = get_driver(&url, None, None, None, &conf).unwrap();
    let err = driver
        .notify(&[event(
            "x-start",
            "b",
            "b",
            "b",
            "2024-01-01T00:00:00.000000",
            json!({}),
        )])
        .unwrap_err();
    assert!(err.to_string().contains("nosuch"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Python osprofiler writes (its own driver, `filter_error_trace` on, a
/// legacy per-key trace by hand); ours reads the same payloads, lists the
/// same traces and builds the same report.
#[test]
fn python_writes_rust_reads() {
    servers::require_redis();
    let out: Value =
        serde_json::from_str(&servers::run_python("redis_interop.py", &["write", REDIS])).unwrap();
    let traces: Vec<(String, String)> = out["traces"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(label, id)| (label.clone(), id.as_str().unwrap().to_string()))
        .collect();
    let mine: HashSet<&str> = traces.iter().map(|(_, id)| id.as_str()).collect();
    let driver = get_driver(
        REDIS,
        Some("rustproj"),
        Some("rustsvc"),
        None,
        &conf(true, None),
    )
    .unwrap();

    for (label, base_id) in &traces {
        let mut ours = driver.get_events(base_id).unwrap();
        let mut theirs = out["stored"][base_id].as_array().unwrap().clone();
        let key = |v: &Value| v.to_string();
        ours.sort_by_key(key);
        theirs.sort_by_key(key);
        assert!(!ours.is_empty(), "{label}: no events");
        assert_eq!(
            ours, theirs,
            "{label}: get_events differs from what Python stored"
        );
    }

    // Listing: the same entries for our traces (Python's answer covers the
    // whole database; other runs may write there concurrently).
    let restrict = |entries: Vec<Value>| -> Vec<String> {
        let mut v: Vec<String> = entries
            .into_iter()
            .filter(|e| e["base_id"].as_str().is_some_and(|id| mine.contains(id)))
            .map(|e| e.to_string())
            .collect();
        v.sort();
        v
    };
    let as_values = |entries: Vec<Map<String, Value>>| {
        entries.into_iter().map(Value::Object).collect::<Vec<_>>()
    };
    let py_list = restrict(out["list_traces"].as_array().unwrap().clone());
    assert_eq!(
        restrict(as_values(driver.list_traces(&[]).unwrap())),
        py_list
    );
    assert_eq!(
        py_list.len(),
        4,
        "nested, guard_error, plain, legacy (single has one event): {py_list:?}"
    );
    assert_eq!(
        restrict(as_values(
            driver
                .list_traces(&["base_id", "name", "trace_id", "info"])
                .unwrap()
        )),
        restrict(out["list_traces_fields"].as_array().unwrap().clone())
    );
    let py_errors = restrict(out["list_error_traces"].as_array().unwrap().clone());
    assert_eq!(
        restrict(as_values(driver.list_error_traces().unwrap())),
        py_errors
    );
    assert_eq!(py_errors.len(), 2, "nested and guard_error: {py_errors:?}");

    // Reports: equal JSON (siblings of the same millisecond in any order).
    for (label, base_id) in &traces {
        let mut ours = driver.get_report(base_id).unwrap().to_value();
        let mut theirs = out["reports"][base_id].clone();
        servers::normalize_report(&mut ours);
        servers::normalize_report(&mut theirs);
        assert_eq!(ours, theirs, "{label}: report differs from Python's");
    }
    cleanup(&mine.into_iter().collect::<Vec<_>>());
}
