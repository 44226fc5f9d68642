//! Throwaway stores for the outage tests, each a process of our own on a
//! free port that can be SIGKILLed and started again on the same port and
//! data (the machine's shared Redis, PostgreSQL and RabbitMQ are never
//! touched). A missing server binary fails the test with its name.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// A fresh temporary directory, removed by its owner.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("{prefix}{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// SIGKILLs the process group led by `child` (a server and its helpers)
/// and reaps the leader.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn own_group(command: &mut Command) -> &mut Command {
    std::os::unix::process::CommandExt::process_group(command, 0)
}

/// A store process that can be SIGKILLed and started again.
pub trait Backend {
    /// The connection string the demo writes to.
    fn connection_string(&self) -> String;
    /// The oslo transport URL (messaging only).
    fn transport_url(&self) -> Option<String> {
        None
    }
    /// SIGKILLs the server (and its helper processes).
    fn kill(&mut self);
    /// Starts it again on the same port and data; returns once it accepts
    /// connections.
    fn restart(&mut self);
    /// Name in figures and messages.
    fn name(&self) -> &'static str;
}

/// `redis-server` with an append-only file written before each reply, so
/// what it acknowledged survives a SIGKILL: the tests then find every
/// trace stored before, during and after the outage.
pub struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: temp_dir("osprofiler-redis-"),
            child: None,
        };
        redis.restart();
        redis
    }
}

impl Backend for Redis {
    fn connection_string(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    fn restart(&mut self) {
        let port = self.port.to_string();
        let child = own_group(Command::new("redis-server").args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &self.dir.to_string_lossy(),
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-server (apt-get install redis-server): {e}"));
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(20)),
            "throwaway redis-server did not start on port {}",
            self.port
        );
    }

    fn name(&self) -> &'static str {
        "Redis"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster in a temp dir, run as the `postgres` user
/// (`initdb` and `postgres` refuse root) through `runuser`.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Postgres {
    pub fn start() -> Postgres {
        let initdb = Path::new(PG_BIN).join("initdb");
        assert!(
            initdb.exists(),
            "{} is missing: the PostgreSQL outage test runs a cluster of its own (apt-get install postgresql-15)",
            initdb.display()
        );
        let dir = temp_dir("osprofiler-pg-");
        let data = dir.join("data");
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("run chown");
        assert!(chown.success(), "chown postgres {} failed", dir.display());
        let out = as_postgres(&initdb)
            .args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed (runuser -u postgres needs root or the postgres user): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            port: free_port(),
            dir,
            child: None,
        };
        pg.restart();
        pg
    }
}

/// `program` run as the `postgres` user (directly when we are not root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Backend for Postgres {
    fn connection_string(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    fn restart(&mut self) {
        let port = self.port.to_string();
        let socket_dir = self.dir.to_string_lossy().into_owned();
        let child = own_group(
            as_postgres(&Path::new(PG_BIN).join("postgres"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-p", &port, "-k", &socket_dir])
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run postgres");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "throwaway postgres did not start on port {} ({})",
            self.port,
            self.dir.display()
        );
        // Crash recovery: the port may open before connections are accepted.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(Path::new(PG_BIN).join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("throwaway postgres on port {port} never became ready");
    }

    fn name(&self) -> &'static str {
        "PostgreSQL"
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// A RabbitMQ node of our own (own node name, ports, data dir and Erlang
/// cookie), with a durable `openstack` exchange so that notifications
/// confirmed before a SIGKILL survive it (the messaging driver then
/// declares `profiler.info` durable too).
pub struct RabbitMq {
    port: u16,
    dist_port: u16,
    node: String,
    home: PathBuf,
    child: Option<Child>,
}

impl RabbitMq {
    pub fn start() -> RabbitMq {
        let server = Path::new(RABBITMQ_BIN).join("rabbitmq-server");
        assert!(
            server.exists(),
            "{} is missing: the RabbitMQ outage test runs a node of its own",
            server.display()
        );
        let home = temp_dir("osprofiler-rabbit-");
        std::fs::write(home.join("enabled_plugins"), "[].\n").unwrap();
        let port = free_port();
        let mut rabbit = RabbitMq {
            port,
            dist_port: free_port(),
            node: format!("osprofiler_load_{}_{port}@localhost", std::process::id()),
            home,
            child: None,
        };
        rabbit.restart();
        rabbit.declare_durable_exchange();
        rabbit
    }

    fn declare_durable_exchange(&self) {
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/python-env (kombu declares the durable exchange)",
            python.display()
        );
        let script = "import sys, kombu\n\
             with kombu.Connection(sys.argv[1]) as c:\n\
             \x20   kombu.Exchange('openstack', 'topic', durable=True)(c.channel()).declare()\n";
        let out = Command::new(python)
            .args(["-W", "ignore", "-c", script])
            .arg(format!("amqp://guest:guest@127.0.0.1:{}//", self.port))
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "declaring the durable exchange failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Backend for RabbitMq {
    fn connection_string(&self) -> String {
        "messaging://".into()
    }

    fn transport_url(&self) -> Option<String> {
        Some(format!("rabbit://guest:guest@127.0.0.1:{}/", self.port))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    fn restart(&mut self) {
        let home = &self.home;
        let child = own_group(
            Command::new(Path::new(RABBITMQ_BIN).join("rabbitmq-server"))
                .env("HOME", home)
                .env("RABBITMQ_NODENAME", &self.node)
                .env("RABBITMQ_NODE_PORT", self.port.to_string())
                .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
                .env("RABBITMQ_MNESIA_BASE", home.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", home.join("log"))
                .env(
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    home.join("enabled_plugins"),
                )
                .env("RABBITMQ_CONFIG_FILE", home.join("rabbitmq"))
                .env("RABBITMQ_PID_FILE", home.join("pid")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run rabbitmq-server");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(90)),
            "the private RabbitMQ node did not start within 90 s (logs in {})",
            self.home.join("log").display()
        );
    }

    fn name(&self) -> &'static str {
        "RabbitMQ"
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
