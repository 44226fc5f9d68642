//! OTLP test helpers: a tiny OTLP/HTTP receiver on 127.0.0.1, and the
//! Python referee (`tests/python/otlp_referee.py`) that decodes exports
//! with the official protobuf definitions and runs upstream's OTLP driver.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use osprofiler::notification::Notification;
use serde_json::{json, Value};

use super::python;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct State {
    captured: Vec<Captured>,
    /// Statuses for the next requests (then 200).
    statuses: VecDeque<u16>,
}

/// An HTTP/1.1 server on 127.0.0.1:0 that records every request and answers
/// with an empty `ExportTraceServiceResponse` (or the statuses queued with
/// [`Receiver::answer_next`]). It only answers requests the test sends;
/// its threads end with the test process.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Receiver { addr, state }
    }

    /// The `otlp://` connection string of this receiver.
    pub fn connection_string(&self) -> String {
        format!("otlp://{}", self.addr)
    }

    /// Answers the next requests with these statuses.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().statuses.extend(statuses);
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.state.lock().unwrap().captured.clone()
    }

    /// The bodies answered with 200.
    pub fn accepted_bodies(&self) -> Vec<Vec<u8>> {
        self.captured()
            .into_iter()
            .filter(|c| c.status == 200)
            .map(|c| c.body)
            .collect()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (method, path) = (method.to_string(), path.to_string());
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_string(),
                    "transfer-encoding" => panic!("chunked bodies are not expected"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = {
            let mut state = state.lock().unwrap();
            let status = state.statuses.pop_front().unwrap_or(200);
            state.captured.push(Captured {
                path: path.clone(),
                content_type,
                body,
                status,
            });
            status
        };
        assert_eq!(method, "POST", "unexpected {method} {path}");
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Decodes export bodies with the official definitions (Python's
/// `opentelemetry-proto`), one JSON object per body.
pub fn decode(bodies: &[Vec<u8>]) -> Vec<Value> {
    let input: String = bodies
        .iter()
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b) + "\n")
        .collect();
    python::run("otlp_referee.py", &["decode"], &input)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON from the referee"))
        .collect()
}

/// What upstream's OTLP driver exports for `notifications`, decoded.
pub fn upstream(
    project: Option<&str>,
    service: Option<&str>,
    prefix: Option<&str>,
    notifications: &[Notification],
) -> Vec<Value> {
    let payloads: Vec<Value> = notifications
        .iter()
        .map(|n| n.to_value(project, service))
        .collect();
    let job = json!({"project": project, "service": service, "prefix": prefix,
        "notifications": payloads});
    let out = python::run("otlp_referee.py", &["upstream"], &job.to_string());
    let answer: Value = serde_json::from_str(out.trim()).expect("JSON from the referee");
    answer["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            assert_eq!(r["path"], "/v1/traces");
            assert_eq!(r["content_type"], "application/x-protobuf");
            r["export"].clone()
        })
        .collect()
}

/// Every span of decoded exports, each with its `resource` and `scope`,
/// sorted by span id. Times are kept.
pub fn spans(exports: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for export in exports {
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let mut span = span.clone();
                    span["resource"] = rs["resource"].clone();
                    span["resourceSchemaUrl"] = rs.get("schemaUrl").cloned().unwrap_or(Value::Null);
                    span["scope"] = ss["scope"].clone();
                    span["scopeSchemaUrl"] = ss.get("schemaUrl").cloned().unwrap_or(Value::Null);
                    out.push(span);
                }
            }
        }
    }
    out.sort_by(|a, b| a["spanId"].as_str().cmp(&b["spanId"].as_str()));
    out
}

/// [`spans`] without the clock readings (upstream reads its clock; we use
/// the payloads' timestamps).
pub fn timeless(spans: &[Value]) -> Vec<Value> {
    spans
        .iter()
        .map(|span| {
            let mut span = span.clone();
            let map = span.as_object_mut().unwrap();
            map.remove("startTimeUnixNano");
            map.remove("endTimeUnixNano");
            if let Some(events) = map.get_mut("events").and_then(Value::as_array_mut) {
                for e in events {
                    e.as_object_mut().unwrap().remove("timeUnixNano");
                }
            }
            span
        })
        .collect()
}

/// Nanoseconds since the epoch of a payload timestamp, as the JSON
/// mapping writes 64-bit integers (a string).
pub fn nanos(timestamp: &str) -> String {
    let micros = osprofiler::notification::parse_timestamp(timestamp).expect("timestamp");
    (micros as u64 * 1000).to_string()
}
