//! The reqwest middleware against real servers: an axum server behind our
//! tower layer, and a Python WSGI app behind upstream's `WsgiMiddleware`.
#![cfg(all(feature = "reqwest", feature = "tower"))]

mod common {
    pub mod python;
    pub mod tree;
}

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::tree;
use osprofiler::drivers::MemoryDriver;
use osprofiler::http_client::{self, TracingMiddleware};
use osprofiler::profiler::{self, Trace};
use osprofiler::{notifier, web};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{json, Value};
use serial_test::serial;

const KEY: &str = "SECRET_KEY";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::new())
        .build()
}

/// Handler that records a `db` element and reports whether it saw a trace.
async fn servers() -> String {
    let traced = profiler::is_active();
    {
        let _db = Trace::new("db", Some(json!({"db": {"statement": "SELECT 1"}})));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if traced { "traced" } else { "untraced" }.to_string()
}

async fn never() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// An axum server on a free port, behind `web::TraceLayer`.
async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/v2.1/servers", get(servers))
        .route("/never", get(never))
        .layer(web::TraceLayer::new(KEY));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Runs `work` in a fresh trace under a `client` element; returns the
/// trace's base id and the stored payloads.
fn traced<F, Fut>(store: &MemoryDriver, work: F) -> (String, Vec<Value>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    store.clear();
    let runtime = rt();
    let base_id = runtime.block_on(profiler::scope(async {
        let p = profiler::init(KEY, None, None);
        let _client = Trace::new("client", None);
        work().await;
        p.base_id()
    }));
    notifier::flush(Duration::from_secs(5)).unwrap();
    (base_id, store.payloads())
}

fn install() -> MemoryDriver {
    let store = MemoryDriver::new();
    notifier::set(store.clone());
    http_client::reset_global();
    web::reset_global();
    store
}

#[test]
#[serial]
fn round_trip_makes_one_tree() {
    let store = install();
    let runtime = rt();
    let addr = runtime.block_on(serve());
    let url = format!("http://{addr}/v2.1/servers?limit=1");
    let (base_id, payloads) = traced(&store, || async {
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "traced");
        // The caller's stack is as it was: this is a sibling of `http`.
        let _after = Trace::new("after", None);
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "client\n  http\n    wsgi\n      db\n  after\n"
    );
    let http = tree::only(&payloads, &base_id, "http");
    assert_eq!(
        http.start["info"]["requests"],
        json!({"method": "GET", "query": "limit=1", "path": "/v2.1/servers",
               "hostname": "127.0.0.1", "port": addr.port(), "scheme": "http"})
    );
    assert_eq!(http.stop["info"]["requests"], json!({"status_code": 200}));
    let wsgi = tree::only(&payloads, &base_id, "wsgi");
    assert_eq!(wsgi.parent_id, http.start["trace_id"].as_str().unwrap());
    assert_eq!(
        wsgi.start["info"]["request"],
        json!({"path": "/v2.1/servers", "query": "limit=1", "method": "GET", "scheme": "http"})
    );
}

#[test]
#[serial]
fn concurrent_requests_keep_their_own_elements() {
    let store = install();
    let runtime = rt();
    let addr = runtime.block_on(serve());
    let url = format!("http://{addr}/v2.1/servers");
    let (base_id, payloads) = traced(&store, || async {
        let client = client();
        let (a, b, c) = tokio::join!(
            client.get(&url).send(),
            client.get(&url).send(),
            client.get(&url).send()
        );
        for r in [a, b, c] {
            assert_eq!(r.unwrap().status(), 200);
        }
    });
    let elements = tree::elements(&payloads, &base_id);
    let client_id = &tree::only(&payloads, &base_id, "client").start["trace_id"];
    let https: Vec<_> = elements.values().filter(|e| e.name == "http").collect();
    assert_eq!(https.len(), 3);
    for http in &https {
        assert_eq!(http.parent_id, client_id.as_str().unwrap());
        let id = http.start["trace_id"].as_str().unwrap();
        let under: Vec<_> = elements.values().filter(|e| e.parent_id == id).collect();
        assert_eq!(under.len(), 1, "one wsgi under each http");
        assert_eq!(under[0].name, "wsgi");
    }
}

#[test]
#[serial]
fn failed_request_stops_with_an_error() {
    let store = install();
    // A port nothing listens on: bind, note it, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/x");
    let (base_id, payloads) = traced(&store, || async {
        assert!(client().get(&url).send().await.is_err());
    });
    assert_eq!(tree::render(&payloads, &base_id), "client\n  http\n");
    let http = tree::only(&payloads, &base_id, "http");
    assert_eq!(http.stop["info"]["etype"], "ConnectionError");
    assert!(http.stop["info"]["message"].as_str().unwrap().len() > 5);
}

#[test]
#[serial]
fn cancelled_request_stops_as_cancelled() {
    let store = install();
    let runtime = rt();
    let addr = runtime.block_on(serve());
    let url = format!("http://{addr}/never");
    let (base_id, payloads) = traced(&store, || async {
        let request = client().get(&url).send();
        let timed_out = tokio::time::timeout(Duration::from_millis(300), request).await;
        assert!(timed_out.is_err());
        let _after = Trace::new("after", None);
    });
    // The server's `wsgi` may not be stopped yet; look at the client side.
    let ours: Vec<Value> = payloads
        .iter()
        .filter(|p| p["name"] != "wsgi-start" && p["name"] != "wsgi-stop")
        .cloned()
        .collect();
    assert_eq!(tree::render(&ours, &base_id), "client\n  http\n  after\n");
    let http = tree::only(&ours, &base_id, "http");
    assert_eq!(http.stop["info"]["etype"], "Cancelled");
}

#[test]
#[serial]
fn disabled_or_untraced_requests_pass_through() {
    let store = install();
    let runtime = rt();
    let addr = runtime.block_on(serve());
    let url = format!("http://{addr}/v2.1/servers");

    http_client::disable();
    let (base_id, payloads) = traced(&store, || async {
        let body = client().get(&url).send().await.unwrap().text().await;
        assert_eq!(body.unwrap(), "untraced");
    });
    assert_eq!(tree::render(&payloads, &base_id), "client\n");

    // A disabled instance, turned on by the global switch.
    http_client::enable();
    let (base_id, payloads) = traced(&store, || async {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::new().enabled(false))
            .build();
        let body = client.get(&url).send().await.unwrap().text().await;
        assert_eq!(body.unwrap(), "traced");
    });
    assert_eq!(
        tree::render(&payloads, &base_id),
        "client\n  http\n    wsgi\n      db\n"
    );
    http_client::reset_global();

    // No profiler: nothing recorded, no headers sent.
    store.clear();
    let body = runtime.block_on(async {
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(body, "untraced");
    notifier::flush(Duration::from_secs(5)).unwrap();
    assert!(store.payloads().is_empty());
}

#[test]
#[serial]
fn inject_headers_signs_the_current_element() {
    let _store = install();
    profiler::init(KEY, Some("base"), None);
    let _outer = Trace::new("outer", None);
    let current = profiler::get().unwrap().id();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-trace-info", "stale".parse().unwrap());
    assert!(http_client::inject_headers(&mut headers));
    let info = headers["x-trace-info"].to_str().unwrap();
    let hmac = headers["x-trace-hmac"].to_str().unwrap();
    let unpacked = web::signed_unpack(Some(info), Some(hmac), &[KEY]).expect("valid headers");
    assert_eq!(unpacked.base_id, "base");
    assert_eq!(unpacked.parent_id.as_deref(), Some(current.as_str()));
    drop(_outer);
    profiler::clean();
}

/// Our client calls a Python WSGI app wrapped in upstream's
/// `osprofiler.web.WsgiMiddleware`: its `wsgi` element lands under our
/// `http` element, in our trace.
#[test]
#[serial]
fn python_wsgi_middleware_continues_our_trace() {
    let store = install();
    let dir = std::env::temp_dir().join(format!("osprofiler-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let python_payloads = dir.join("payloads.jsonl");
    let _ = std::fs::remove_file(&python_payloads);

    let mut server = Command::new(common::python::python())
        .arg(common::python::script("wsgi_server.py"))
        .arg(&python_payloads)
        .arg("1")
        .arg(KEY)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python WSGI server");
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let port: u16 = port
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Python WSGI server printed no port: {port:?}"));

    let url = format!("http://127.0.0.1:{port}/compute/v2.1/servers?all_tenants=1");
    let (base_id, ours) = traced(&store, || async {
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    while server.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("Python WSGI server did not exit after serving the request");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let theirs: Vec<Value> = std::fs::read_to_string(&python_payloads)
        .expect("Python payloads")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(theirs.len(), 4, "wsgi and db, start and stop: {theirs:?}");

    let all: Vec<Value> = ours.iter().chain(&theirs).cloned().collect();
    assert_eq!(
        tree::render(&all, &base_id),
        "client\n  http\n    wsgi\n      db\n"
    );
    let http = tree::only(&all, &base_id, "http");
    let wsgi = tree::only(&theirs, &base_id, "wsgi");
    assert_eq!(wsgi.parent_id, http.start["trace_id"].as_str().unwrap());
    assert_eq!(
        wsgi.start["info"]["request"],
        json!({"path": "/compute/v2.1/servers", "query": "all_tenants=1",
               "method": "GET", "scheme": "http"})
    );
    assert_eq!(http.stop["info"]["requests"]["status_code"], 200);
}
