//! Load generator and trace checker for the reliability tests: runs
//! `osprofiler demo --serve`, sends it signed traced `POST /servers`
//! requests at a steady rate (or from N clients as fast as they can),
//! records each request's latency and outcome, and afterwards reads every
//! trace back through the library's driver and checks its tree.

#![allow(dead_code)] // each test uses a different part

pub mod backends;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::{self, Driver};
use serde_json::Value;

/// The key the demo trusts and the load generator signs with.
pub const KEY: &str = "reliability-key";

/// Elements of one `POST /servers` trace: `wsgi` (api) > `http` (api) >
/// `wsgi` (compute) > `rpc` create_server (compute) > `db` and `rpc`
/// schedule (compute).
pub const ELEMENTS_PER_REQUEST: usize = 6;
/// Notifications of one `POST /servers` trace (a start and a stop each).
pub const EVENTS_PER_REQUEST: usize = 2 * ELEMENTS_PER_REQUEST;

/// What `osprofiler demo --serve` printed about its notifications at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoStats {
    pub sent: u64,
    pub dropped: u64,
    pub undelivered: u64,
    pub failed_calls: u64,
}

/// How the demo ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    /// From SIGTERM to exit.
    pub took: Duration,
    pub stderr: String,
    pub stats: DemoStats,
}

/// A running `osprofiler demo --serve`.
pub struct Demo {
    child: Option<Child>,
    pub url: String,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo cloud on a free port, storing into
    /// `connection_string`, and waits until the api listens.
    pub fn start(connection_string: &str, extra: &[&str]) -> Demo {
        let port = backends::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
            .env_remove("OSPROFILER_CONNECTION_STRING")
            .env_remove("OSPROFILER_HMAC_KEY")
            .args(["demo", "--serve", "--listen", &listen, "--hmac-key", KEY])
            .args(["--connection-string", connection_string])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run osprofiler demo --serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut text = stderr.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            })
        };
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = lines.any(|l| l.is_ok_and(|l| l.starts_with("api listening on")));
        // Keep reading stdout so the demo never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut demo = Demo {
            child: Some(child),
            url: format!("http://{listen}"),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        if !listening {
            let status = demo.child.as_mut().unwrap().wait().unwrap();
            if let Some(reader) = demo.stderr_reader.take() {
                let _ = reader.join();
            }
            panic!(
                "osprofiler demo --serve exited ({status}) before listening:\n{}",
                demo.stderr.lock().unwrap()
            );
        }
        demo
    }

    /// Sends SIGTERM and waits at most `timeout` for the demo to exit.
    pub fn terminate(mut self, timeout: Duration) -> Exit {
        let mut child = self.child.take().unwrap();
        let signalled = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if signalled.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the demo did not exit within {timeout:?} of SIGTERM (hang on shutdown):\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = signalled.elapsed();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        let stats = parse_stats(&stderr).unwrap_or_else(|| {
            panic!("the demo printed no `notifications:` line at exit ({status}):\n{stderr}")
        });
        Exit {
            status,
            took,
            stderr,
            stats,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse_stats(stderr: &str) -> Option<DemoStats> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("notifications: "))?;
    let fields: HashMap<&str, u64> = line
        .split_whitespace()
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    Some(DemoStats {
        sent: *fields.get("sent")?,
        dropped: *fields.get("dropped")?,
        undelivered: *fields.get("undelivered")?,
        failed_calls: *fields.get("failed_calls")?,
    })
}

/// One request the load generator sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub index: usize,
    /// The server name sent (`vm-<index>`), found again in the `db` span.
    pub name: String,
    pub base_id: String,
    /// The client's element: parent of the request's `wsgi` element.
    pub parent_id: String,
    /// When it was due, from the start of the load.
    pub due: Duration,
    /// From when it was due to the end of the response.
    pub latency: Duration,
    /// HTTP status, or the transport error.
    pub outcome: Result<u16, String>,
}

impl Request {
    pub fn ok(&self) -> bool {
        self.outcome == Ok(201)
    }
}

/// How requests are sent.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Requests per second, spread evenly (open loop: a slow answer does
    /// not delay the next request); `None`: each client sends its next
    /// request as soon as its last one is answered.
    pub rate: Option<f64>,
    /// Closed loop: the number of clients; open loop: the most requests in
    /// flight.
    pub clients: usize,
    /// Stop after this many requests (else when [`Load::stop`] is called).
    pub total: Option<usize>,
    /// One base id for every request (each still has its own parent id),
    /// for stores read a whole trace at a time (messaging).
    pub shared_base_id: Option<String>,
}

/// Load running on its own thread and runtime.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Request>>,
}

impl Load {
    pub fn start(url: &str, plan: Plan) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (url, stop) = (url.to_string(), stop.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(generate(url, plan, started, stop))
            })
        };
        Load {
            started,
            stop,
            handle,
        }
    }

    /// Time since the load started (the clock of [`Request::due`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending and waits for the answers of requests in flight.
    pub fn stop(self) -> Vec<Request> {
        self.stop.store(true, Ordering::SeqCst);
        self.wait()
    }

    /// Waits until the plan's `total` requests are answered.
    pub fn wait(self) -> Vec<Request> {
        let mut requests = self.handle.join().expect("load generator panicked");
        requests.sort_by_key(|r| r.index);
        requests
    }
}

async fn generate(
    url: String,
    plan: Plan,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Request> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(plan.clients)
        .build()
        .unwrap();
    let target = Arc::new(Target {
        client,
        url: format!("{url}/servers"),
        shared_base_id: plan.shared_base_id.clone(),
        done: Mutex::new(Vec::new()),
    });
    let total = plan.total.unwrap_or(usize::MAX);
    match plan.rate {
        Some(rate) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(plan.clients));
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut tasks = tokio::task::JoinSet::new();
            for index in 0..total {
                let due = period * index as u32;
                tokio::time::sleep_until((started + due).into()).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let permit = permits.clone().acquire_owned().await.unwrap();
                let target = target.clone();
                tasks.spawn(async move {
                    target.send(index, started, due).await;
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..plan.clients {
                let (target, next, stop) = (target.clone(), next.clone(), stop.clone());
                tasks.spawn(async move {
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= total || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        target.send(index, started, started.elapsed()).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    let done = std::mem::take(&mut *target.done.lock().unwrap());
    done
}

struct Target {
    client: reqwest::Client,
    url: String,
    shared_base_id: Option<String>,
    done: Mutex<Vec<Request>>,
}

impl Target {
    async fn send(&self, index: usize, started: Instant, due: Duration) {
        let base_id = self
            .shared_base_id
            .clone()
            .unwrap_or_else(|| osprofiler::profiler::Id::random().to_string());
        let parent_id = osprofiler::profiler::Id::random().to_string();
        let (info, hmac) = osprofiler::web::trace_headers(&base_id, &parent_id, KEY).unwrap();
        let name = format!("vm-{index}");
        let outcome = self
            .client
            .post(&self.url)
            .header("X-Trace-Info", info)
            .header("X-Trace-HMAC", hmac)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await;
        let outcome = match outcome {
            // Read the body: the request is over when its answer is.
            Ok(response) => {
                let status = response.status().as_u16();
                response
                    .bytes()
                    .await
                    .map(|_| status)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(format!("{e:?}")),
        };
        let latency = started.elapsed().saturating_sub(due);
        self.done.lock().unwrap().push(Request {
            index,
            name,
            base_id,
            parent_id,
            due,
            latency,
            outcome,
        });
    }
}

/// Latency figures of some requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Latency {
        let mut all: Vec<Duration> = requests.into_iter().map(|r| r.latency).collect();
        all.sort();
        // Nearest rank.
        let rank = |p: f64| -> Duration {
            if all.is_empty() {
                return Duration::ZERO;
            }
            let i = ((p * all.len() as f64).ceil() as usize).clamp(1, all.len());
            all[i - 1]
        };
        Latency {
            count: all.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: all.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The requests due in `[from, to)`.
pub fn window(requests: &[Request], from: Duration, to: Duration) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.due >= from && r.due < to)
        .collect()
}

/// Requests that did not get `201 Created`, described.
pub fn failures(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("#{} at {:?}: {:?}", r.index, r.due, r.outcome))
        .collect()
}

/// Opens the store the demo wrote to, for reading.
pub fn store(connection_string: &str, transport_url: Option<&str>) -> Arc<dyn Driver> {
    let mut conf = ProfilerConfig::default();
    conf.transport_url = transport_url.map(str::to_string);
    conf.idle_timeout_seconds = 3;
    drivers::get_driver(connection_string, None, None, None, &conf)
        .unwrap_or_else(|e| panic!("cannot open {connection_string} to read the traces: {e}"))
}

/// What was found of the requests' traces.
#[derive(Debug, Default)]
pub struct Found {
    /// Requests whose trace has exactly the expected tree.
    pub complete: usize,
    /// Requests with no event at all.
    pub absent: usize,
    /// Requests with some events but not the whole tree, described (only
    /// expected events missing: what drops leave).
    pub partial: Vec<String>,
    /// Anything else: an unexpected element, a duplicate event, an event
    /// of another request, described.
    pub wrong: Vec<String>,
    /// Events found, in all.
    pub events: usize,
    /// Index of every request whose trace is not complete.
    pub incomplete: Vec<usize>,
}

impl Found {
    /// Events expected from `requests` but not found.
    pub fn lost(&self, requests: usize) -> usize {
        (requests * EVENTS_PER_REQUEST).saturating_sub(self.events)
    }
}

/// Reads the trace of every request (those answered `201` and the others)
/// and checks each against the expected tree.
pub fn check_traces(store: &dyn Driver, requests: &[Request]) -> Found {
    let mut found = Found::default();
    let mut by_base: HashMap<&str, Vec<&Request>> = HashMap::new();
    for request in requests {
        by_base.entry(&request.base_id).or_default().push(request);
    }
    for (base_id, requests) in by_base {
        let events = store
            .get_events(base_id)
            .unwrap_or_else(|e| panic!("cannot read trace {base_id}: {e}"));
        check_base(base_id, &events, &requests, &mut found);
    }
    found
}

/// One element of a trace as stored: its start and stop payloads.
#[derive(Default)]
struct Element<'a> {
    starts: Vec<&'a Value>,
    stops: Vec<&'a Value>,
}

fn check_base(base_id: &str, events: &[Value], requests: &[&Request], found: &mut Found) {
    let mut elements: HashMap<&str, Element<'_>> = HashMap::new();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    // Well-formed events of this base id.
    let mut stored = 0;
    for event in events {
        let (Some(name), Some(trace_id), Some(parent_id)) = (
            event["name"].as_str(),
            event["trace_id"].as_str(),
            event["parent_id"].as_str(),
        ) else {
            found
                .wrong
                .push(format!("{base_id}: malformed event {event}"));
            continue;
        };
        if event["base_id"].as_str() != Some(base_id) {
            found
                .wrong
                .push(format!("{base_id}: event of another trace: {event}"));
            continue;
        }
        stored += 1;
        let element = elements.entry(trace_id).or_default();
        if element.starts.is_empty() && element.stops.is_empty() {
            children.entry(parent_id).or_default().push(trace_id);
        }
        if name.ends_with("-start") {
            element.starts.push(event);
        } else if name.ends_with("-stop") {
            element.stops.push(event);
        } else {
            found.wrong.push(format!("{base_id}: event {name}"));
        }
    }
    let mut reached = 0;
    let base_events = found.events;
    let mut outcomes = Vec::new();
    for request in requests {
        let before = found.events;
        let mut problems = Vec::new();
        let mut missing = Vec::new();
        check_subtree(
            &request.parent_id,
            &EXPECTED,
            &elements,
            &children,
            request,
            found,
            &mut missing,
            &mut problems,
            &mut reached,
        );
        outcomes.push((request, found.events - before, missing, problems));
    }
    if reached < elements.len() {
        let orphans = elements.len() - reached;
        let orphan_events = stored - (found.events - base_events);
        match outcomes.as_mut_slice() {
            // A trace of its own: elements whose parent is missing (its
            // events were dropped) are still this request's.
            [(_, count, missing, problems)] => {
                if missing.is_empty() {
                    problems.push(format!("{orphans} elements outside its tree"));
                }
                missing.push(format!("the parents of {orphans} elements"));
                *count += orphan_events;
                found.events += orphan_events;
            }
            _ => found.wrong.push(format!(
                "{base_id}: {orphans} elements belong to no request's tree"
            )),
        }
    }
    for (request, count, missing, problems) in outcomes {
        let label = format!("#{} ({base_id})", request.index);
        if !problems.is_empty() || count == 0 || !missing.is_empty() {
            found.incomplete.push(request.index);
        }
        if !problems.is_empty() {
            found
                .wrong
                .push(format!("{label}: {}", problems.join("; ")));
        } else if count == 0 {
            found.absent += 1;
        } else if missing.is_empty() {
            found.complete += 1;
        } else {
            found
                .partial
                .push(format!("{label}: missing {}", missing.join(", ")));
        }
    }
}

/// An expected element: name, service, the function of `rpc` elements,
/// children.
struct Expected {
    name: &'static str,
    service: &'static str,
    function: Option<&'static str>,
    children: &'static [Expected],
}

const EXPECTED: [Expected; 1] = [Expected {
    name: "wsgi",
    service: "api",
    function: None,
    children: &[Expected {
        name: "http",
        service: "api",
        function: None,
        children: &[Expected {
            name: "wsgi",
            service: "compute",
            function: None,
            children: &[Expected {
                name: "rpc",
                service: "compute",
                function: Some("create_server"),
                children: &[
                    Expected {
                        name: "rpc",
                        service: "compute",
                        function: Some("schedule"),
                        children: &[],
                    },
                    Expected {
                        name: "db",
                        service: "compute",
                        function: None,
                        children: &[],
                    },
                ],
            }],
        }],
    }],
}];

/// Matches the children of `parent` against `expected`, recursively.
#[allow(clippy::too_many_arguments)]
fn check_subtree(
    parent: &str,
    expected: &'static [Expected],
    elements: &HashMap<&str, Element<'_>>,
    children: &HashMap<&str, Vec<&str>>,
    request: &Request,
    found: &mut Found,
    missing: &mut Vec<String>,
    problems: &mut Vec<String>,
    reached: &mut usize,
) {
    let mut wanted: Vec<&Expected> = expected.iter().collect();
    for &trace_id in children.get(parent).map(Vec::as_slice).unwrap_or_default() {
        *reached += 1;
        let element = &elements[trace_id];
        let count = element.starts.len() + element.stops.len();
        found.events += count;
        let payload = element.starts.first().or(element.stops.first()).unwrap();
        let name = payload["name"].as_str().unwrap_or("");
        let name = name.split('-').next().unwrap_or("");
        let service = payload["service"].as_str().unwrap_or("");
        let function = element.starts.first().and_then(|s| {
            s["info"]["function"]["name"]
                .as_str()
                .map(|f| f.rsplit("::").next().unwrap_or(f).to_string())
        });
        let position = wanted.iter().position(|e| {
            e.name == name
                && e.service == service
                && (e.function.is_none()
                    || element.starts.is_empty()
                    || function.as_deref() == e.function)
        });
        let Some(position) = position else {
            problems.push(format!(
                "unexpected {name}/{service} {function:?} under {parent}"
            ));
            continue;
        };
        let expected = wanted.remove(position);
        if element.starts.len() > 1 || element.stops.len() > 1 {
            problems.push(format!(
                "{name}: {} starts, {} stops",
                element.starts.len(),
                element.stops.len()
            ));
        }
        if element.starts.is_empty() {
            missing.push(format!("{name}-start"));
        }
        if element.stops.is_empty() {
            missing.push(format!("{name}-stop"));
        }
        // Cross-talk: the statement's parameters are this request's.
        if expected.name == "db" {
            if let Some(start) = element.starts.first() {
                let params = start["info"]["db"]["params"].to_string();
                if !params.contains(&format!("\"{}\"", request.name))
                    && !params.contains(&format!("'{}'", request.name))
                {
                    problems.push(format!(
                        "db span of another request: params {params}, expected {}",
                        request.name
                    ));
                }
            }
        }
        check_subtree(
            trace_id,
            expected.children,
            elements,
            children,
            request,
            found,
            missing,
            problems,
            reached,
        );
    }
    for expected in wanted {
        missing.push(format!("{} (whole subtree)", expected.name));
    }
}
