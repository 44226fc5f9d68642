//! The Redis driver behind the real notification pipeline (global
//! notifier, collector thread): Python's CLI reads what it writes, and a
//! Redis that dies and comes back loses nothing.
#![cfg(feature = "redis")]

mod servers;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::get_driver;
use osprofiler::notifier;
use osprofiler::profiler::{self, Trace};
use serde_json::{json, Value};
use serial_test::serial;

const REDIS: &str = "redis://127.0.0.1:6379/9";

#[derive(Debug)]
struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota exceeded: ünïcødé")
    }
}

/// Traces written through `notifier::set` + `profiler` are shown by Python's
/// `osprofiler trace show --json` with the expected tree and stats, and
/// the JSON equals our own report.
#[test]
#[serial]
fn python_cli_shows_our_traces() {
    servers::require_redis();
    let mut conf = ProfilerConfig::default();
    conf.filter_error_trace = true;
    let driver = get_driver(REDIS, Some("rustproj"), Some("rustsvc"), None, &conf).unwrap();
    notifier::set_shared(driver.clone());

    let base_id = profiler::init("SECRET_KEY", None, None).base_id();
    {
        let _wsgi = Trace::new(
            "wsgi",
            Some(
                json!({"request": {"path": "/v2/servers", "query": "", "method": "GET", "scheme": "http"}}),
            ),
        );
        {
            let _db = Trace::new(
                "db",
                Some(json!({"db": {"statement": "SELECT 1", "params": {}}})),
            );
            std::thread::sleep(Duration::from_millis(3));
        }
        {
            let mut compute = Trace::new(
                "compute",
                Some(json!({"function": {"name": "rust::compute"}})),
            );
            std::thread::sleep(Duration::from_millis(2));
            compute.error(&Failure);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    profiler::clean();
    notifier::flush(Duration::from_secs(10)).expect("flush to Redis");

    let out = Command::new(servers::venv_bin("osprofiler"))
        .args([
            "trace",
            "show",
            "--json",
            "--connection-string",
            REDIS,
            &base_id,
        ])
        .output()
        .expect("run the Python osprofiler CLI");
    assert!(
        out.status.success(),
        "osprofiler trace show failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shown: Value = serde_json::from_slice(&out.stdout).expect("JSON from trace show");

    assert_eq!(shown["info"]["name"], "total");
    assert!(
        shown["info"]["finished"].as_i64().unwrap() >= 7,
        "{}",
        shown["info"]
    );
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
    let compute = &wsgi["children"][1]["info"];
    assert!(
        compute["exception"].as_str().unwrap().ends_with("Failure"),
        "{compute}"
    );
    assert_eq!(
        compute["meta.raw_payload.compute-stop"]["info"]["message"],
        "quota exceeded: ünïcødé"
    );
    assert_eq!(wsgi["children"][0]["info"]["exception"], "None");
    for name in ["wsgi", "db", "compute"] {
        assert_eq!(
            shown["stats"][name]["count"], 1,
            "{name}: {}",
            shown["stats"]
        );
    }
    assert!(shown["stats"]["db"]["duration"].as_i64().unwrap() >= 3);

    let mut ours = driver.get_report(&base_id).unwrap().to_value();
    servers::normalize_report(&mut ours);
    servers::normalize_report(&mut shown);
    assert_eq!(ours, shown);

    // And Python lists it as an error trace.
    let listed = Command::new(servers::venv_bin("osprofiler"))
        .args([
            "trace",
            "list",
            // Upstream's option is `type=bool`: it takes a value.
            "--error-trace",
            "1",
            "--connection-string",
            REDIS,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&base_id),
        "{listed:?}"
    );
    notifier::reset();
    let mut con = redis::Client::open(REDIS)
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("osprofiler_opt:{base_id}"))
        .arg(format!("osprofiler_error:{base_id}"))
        .query(&mut con)
        .unwrap();
}

/// A Redis killed with SIGKILL mid-stream and restarted on the same port:
/// every event recorded before, during and after the outage is in Redis
/// afterwards (the collector retries), and the traced code never blocks.
#[test]
#[serial]
fn redis_killed_and_restarted_loses_nothing() {
    let port = servers::free_port();
    let dir = servers::temp_dir("osprofiler-outage-");
    let dir_arg = dir.to_str().unwrap().to_string();
    // Acknowledged writes survive SIGKILL: append-only file, fsync always.
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir_arg,
    ];
    let mut server = servers::RedisProcess::start(port, &args);
    let url = format!("redis://127.0.0.1:{port}");
    notifier::set_shared(
        get_driver(&url, Some("p"), Some("s"), None, &ProfilerConfig::default()).unwrap(),
    );
    let failed_before = notifier::stats().failed;

    let stop = Arc::new(AtomicBool::new(false));
    let traces = Arc::new(Mutex::new(Vec::<String>::new()));
    let producer = {
        let (stop, traces) = (stop.clone(), traces.clone());
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let base_id = profiler::init("SECRET_KEY", None, None).base_id();
                {
                    let _outer = Trace::new("rpc", Some(json!({"n": 1})));
                    let _inner = Trace::new("db", None);
                }
                profiler::clean();
                slowest = slowest.max(started.elapsed());
                traces.lock().unwrap().push(base_id);
                std::thread::sleep(Duration::from_millis(3));
            }
            slowest
        })
    };

    std::thread::sleep(Duration::from_millis(400));
    server.kill();
    let killed_at = traces.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    let during_outage = traces.lock().unwrap().len() - killed_at;
    assert!(
        notifier::stats().failed > failed_before,
        "the collector never saw the outage: {:?}",
        notifier::stats()
    );
    assert!(
        notifier::flush(Duration::from_millis(200)).is_err(),
        "nothing waiting while Redis is down?"
    );
    let server = servers::RedisProcess::start(port, &args);
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::SeqCst);
    let slowest = producer.join().unwrap();
    notifier::flush(Duration::from_secs(30)).expect("everything delivered after the restart");
    notifier::reset();

    let traces = traces.lock().unwrap().clone();
    assert!(killed_at > 0 && during_outage > 0 && traces.len() > killed_at + during_outage);
    assert!(
        slowest < Duration::from_millis(500),
        "traced code blocked for {slowest:?}"
    );
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut missing = Vec::new();
    let mut duplicated = 0;
    for base_id in &traces {
        let events: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("osprofiler_opt:{base_id}"))
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        let mut names: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let before = names.len();
        names.sort();
        names.dedup();
        duplicated += before - names.len();
        if names != ["db-start", "db-stop", "rpc-start", "rpc-stop"] {
            missing.push((base_id.clone(), names));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} traces incomplete: {:?}",
        missing.len(),
        traces.len(),
        &missing[..missing.len().min(5)]
    );
    // A batch Redis stored just before dying, whose reply was lost, is sent
    // again: at most that one batch may be doubled.
    assert!(duplicated <= 1000, "{duplicated} duplicated events");
    eprintln!(
        "outage test: {} traces ({during_outage} during the outage), {duplicated} duplicated events, slowest traced call {slowest:?}",
        traces.len()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
