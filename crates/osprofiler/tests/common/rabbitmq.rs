//! The real RabbitMQ of the messaging:// tests (127.0.0.1:5672,
//! guest/guest), isolated per test in a fresh virtual host.
//!
//! Use it with `mod common { pub mod rabbitmq; }` (or `#[path]` from
//! another crate). RabbitMQ missing FAILS the test with a message naming
//! it: nothing is skipped.
#![allow(dead_code)] // each test binary uses a different part

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the tests expect RabbitMQ.
pub const ADDR: &str = "127.0.0.1:5672";

/// Fails the test unless RabbitMQ accepts TCP connections at [`ADDR`].
pub fn require_rabbitmq() {
    let socket: SocketAddr = ADDR.parse().expect("socket address");
    if let Err(e) = TcpStream::connect_timeout(&socket, Duration::from_secs(3)) {
        panic!(
            "RabbitMQ is not reachable at {ADDR} ({e}); the messaging:// tests need a real \
             RabbitMQ with the guest/guest account: start it with scripts/services"
        );
    }
}

/// `rabbitmqctl args...`; its stdout, or `None` if it cannot run or fails.
pub fn rabbitmqctl(args: &[&str]) -> Option<String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A virtual host only this test uses, deleted when dropped. Without
/// `rabbitmqctl` (no permission, not installed), falls back to the default
/// vhost `/` with the queue `profiler.info` purged first.
#[derive(Debug)]
pub struct Vhost {
    /// The vhost name.
    pub name: String,
    owned: bool,
}

impl Vhost {
    /// Creates a fresh vhost (`osprofiler_test_<unique>`) where guest may
    /// do anything.
    pub fn new(tag: &str) -> Vhost {
        require_rabbitmq();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "osprofiler_test_{tag}_{}_{nanos:x}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let created = rabbitmqctl(&["add_vhost", &name]).is_some()
            && rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]).is_some();
        if created {
            return Vhost { name, owned: true };
        }
        let _ = rabbitmqctl(&["delete_vhost", &name]);
        eprintln!("rabbitmqctl unavailable: using the default vhost with profiler.info purged");
        let vhost = Vhost {
            name: "/".into(),
            owned: false,
        };
        vhost.purge();
        vhost
    }

    /// The oslo transport URL of this vhost.
    pub fn transport_url(&self) -> String {
        let path = if self.name == "/" {
            String::new()
        } else {
            self.name.clone()
        };
        format!("rabbit://guest:guest@{ADDR}/{path}")
    }

    /// The lapin (AMQP) URL of this vhost.
    pub fn amqp_url(&self) -> String {
        let path = if self.name == "/" { "%2f" } else { &self.name };
        format!("amqp://guest:guest@{ADDR}/{path}")
    }

    /// Empties `profiler.info` (Python, kombu).
    pub fn purge(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../osprofiler/tests/python/messaging_interop.py");
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        let status = Command::new(python)
            .args(["-W", "ignore"])
            .arg(script)
            .args(["purge", &self.transport_url()])
            .status()
            .expect("run python to purge profiler.info");
        assert!(status.success(), "purging profiler.info failed");
    }

    /// Messages (ready + unacknowledged) in `profiler.info`, via
    /// `rabbitmqctl`; `None` without it.
    pub fn queue_length(&self) -> Option<u64> {
        let out = rabbitmqctl(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            &self.name,
            "name",
            "messages",
        ])?;
        out.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some("profiler.info"))
                .then(|| fields.next()?.parse().ok())
                .flatten()
        })
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        if self.owned {
            // Not waited for: deleting takes a while and nothing depends on it.
            let _ = Command::new("rabbitmqctl")
                .args(["delete_vhost", &self.name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}
