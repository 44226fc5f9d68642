//! Helpers for tests against the real local servers (Redis, PostgreSQL,
//! MariaDB) and the Python referee in `.venv`. A server that is not there
//! fails the test with a message naming it; nothing is skipped.

#![allow(dead_code)] // Each test binary uses some of these.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fails the test unless `name` accepts TCP connections at `addr`.
pub fn require(name: &str, addr: &str) {
    let socket: SocketAddr = addr.parse().expect("socket address");
    if let Err(e) = TcpStream::connect_timeout(&socket, Duration::from_secs(3)) {
        panic!(
            "{name} is not reachable at {addr} ({e}); these tests need the real server: \
             start it with scripts/services"
        );
    }
}

/// Fails the test unless Redis answers on 127.0.0.1:6379.
pub fn require_redis() {
    require("Redis", "127.0.0.1:6379");
}

/// A name no other test (or concurrent test run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{}_{:x}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh random uuid4 text.
pub fn unique_uuid() -> String {
    osprofiler::profiler::Id::random().to_string()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A program of the Python referee venv (`python`, `osprofiler`).
pub fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/python-env to install Python osprofiler 4.4.0",
        path.display()
    );
    path
}

/// Runs `.venv/bin/python tests/python/<script> args...` and returns its
/// stdout; fails the test with its stderr if it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(venv_bin("python"))
        .arg(&script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {} {args:?} failed: {}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A throwaway `redis-server` (or sentinel) process, SIGKILLed on drop.
pub struct RedisProcess {
    /// Port it listens on.
    pub port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    /// Starts `redis-server` on `port` with extra `args`, and waits until it
    /// accepts connections.
    pub fn start(port: u16, args: &[&str]) -> RedisProcess {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server (apt-get install redis-server): {e}")
            });
        let process = RedisProcess {
            port,
            child: Some(child),
        };
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "throwaway redis-server did not start on port {port}"
        );
        process
    }

    /// Starts `redis-server <config> --sentinel`.
    pub fn start_sentinel(port: u16, config: &Path) -> RedisProcess {
        let child = Command::new("redis-server")
            .arg(config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server --sentinel: {e}"));
        let process = RedisProcess {
            port,
            child: Some(child),
        };
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "throwaway Redis Sentinel did not start on port {port}"
        );
        process
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temporary directory (removed by the caller, if at all).
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Sorts every `children` list of a report by (`started`, `trace_id`), so
/// two reports whose siblings started in the same millisecond compare
/// equal whatever order the stores returned them in.
pub fn normalize_report(report: &mut serde_json::Value) {
    if let Some(children) = report.get_mut("children").and_then(|c| c.as_array_mut()) {
        for child in children.iter_mut() {
            normalize_report(child);
        }
        children.sort_by(|a, b| {
            let key = |v: &serde_json::Value| {
                (
                    v["info"]["started"].as_i64().unwrap_or_default(),
                    v["trace_id"].as_str().unwrap_or_default().to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
    }
}
