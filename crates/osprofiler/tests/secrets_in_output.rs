//! No password of a connection string and no HMAC key ever appears in a
//! log line or an error message (issue #8 item 6). Every driver is made to
//! fail against an unreachable address, with a capturing `log` logger
//! installed, and everything the library said is searched for the secrets.
//!
//! Its own test binary: the logger is process-wide.

use std::sync::Mutex;
use std::time::Duration;

use osprofiler::config::ProfilerConfig;
use osprofiler::drivers::get_driver;
use osprofiler::{notifier, profiler};
use serial_test::serial;

const PASSWORD: &str = "s3cretPw";
const HMAC_KEY: &str = "hmacK3y-do-not-log";

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
    fn flush(&self) {}
}

fn capture() {
    // Several tests call it; only the first install succeeds.
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Trace);
}

fn take_lines() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Fails with the offending text unless it is free of every secret form.
fn assert_clean(what: &str, text: &str) {
    for secret in [PASSWORD, HMAC_KEY, "pct!word", "pct%21word"] {
        assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
    }
}

/// Connection strings with a password, for every driver compiled in, all
/// pointing at a port nothing listens on (or malformed around the
/// password).
fn connection_strings() -> Vec<(String, ProfilerConfig)> {
    let conf = ProfilerConfig::default().with_socket_timeout(0.2);
    let mut out: Vec<(String, ProfilerConfig)> = vec![
        (format!("foo://user:{PASSWORD}@127.0.0.1:1/"), conf.clone()),
        (format!("unknown:{PASSWORD}"), conf.clone()),
    ];
    let mut add = |cs: String| out.push((cs, conf.clone()));
    if cfg!(feature = "redis") {
        add(format!("redis://:{PASSWORD}@127.0.0.1:1/0"));
        add(format!("redis://default:{PASSWORD}@127.0.0.1:1"));
        add("redis://:pct%21word@127.0.0.1:1/0".to_string());
        add(format!("redis://:{PASSWORD}@127.0.0.1:notaport/0"));
        add(format!("redissentinel://:{PASSWORD}@127.0.0.1:1/0"));
        add(format!(
            "redissentinel://u:{PASSWORD}@127.0.0.1:1,127.0.0.2:1"
        ));
    }
    if cfg!(feature = "postgres") {
        add(format!("postgresql://user:{PASSWORD}@127.0.0.1:1/db"));
        add(format!(
            "postgresql+psycopg2://user:{PASSWORD}@127.0.0.1:1/db?sslmode=disable"
        ));
        add("postgresql://user:pct%21word@127.0.0.1:1/db".to_string());
        add(format!("postgresql://user:{PASSWORD}@[bad/db"));
    }
    if cfg!(feature = "mysql") {
        add(format!("mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/x"));
        add(format!(
            "mysql://root:{PASSWORD}@127.0.0.1:1/x?charset=utf8"
        ));
        add(format!("mysql://root:{PASSWORD}@127.0.0.1:99999/x"));
    }
    if cfg!(feature = "otlp") {
        add(format!("otlp://user:{PASSWORD}@127.0.0.1:1"));
        add(format!("otlp+grpc://user:{PASSWORD}@127.0.0.1:1"));
    }
    if cfg!(feature = "messaging") {
        for url in [
            format!("amqp://guest:{PASSWORD}@127.0.0.1:1/"),
            format!("rabbit://guest:{PASSWORD}@127.0.0.1:1,guest:{PASSWORD}@127.0.0.2:1/vh"),
            "rabbit://guest:pct%21word@127.0.0.1:1/".to_string(),
            format!("rabbit://guest:{PASSWORD}@127.0.0.1:x/"),
            format!("kafka://guest:{PASSWORD}@127.0.0.1:1/"),
        ] {
            out.push((
                "messaging://".to_string(),
                conf.clone().with_transport_url(url),
            ));
        }
    }
    out
}

#[test]
#[serial]
fn failing_drivers_never_log_or_return_secrets() {
    capture();
    take_lines();
    let mut failures = 0;
    for (cs, conf) in connection_strings() {
        match get_driver(&cs, Some("nova"), Some("api"), None, &conf) {
            Err(e) => {
                failures += 1;
                assert_clean(&format!("get_driver({cs}) error"), &e.to_string());
                assert_clean(
                    &format!("get_driver({cs}) error (Debug)"),
                    &format!("{e:?}"),
                );
            }
            Ok(driver) => {
                assert_clean(&format!("{cs} driver (Debug)"), &format!("{driver:?}"));
                notifier::set_shared(driver.clone());
                let _profiler = profiler::init(HMAC_KEY, None, None);
                profiler::start("rpc", None);
                profiler::stop(None);
                profiler::clean();
                // The store is down: the flush fails after the collector
                // tried (and logged) at least once.
                let flushed = notifier::flush(Duration::from_secs(3));
                assert!(flushed.is_err(), "{cs}: nothing listens there");
                assert_clean(&format!("{cs} flush error"), &format!("{flushed:?}"));
                for result in [
                    driver.get_events("b").map(|_| ()),
                    driver.list_traces(&["base_id"]).map(|_| ()),
                    driver.list_error_traces().map(|_| ()),
                ] {
                    if let Err(e) = result {
                        failures += 1;
                        assert_clean(&format!("{cs} read error"), &e.to_string());
                    }
                }
                notifier::reset();
            }
        }
    }
    let lines = take_lines();
    assert!(
        lines.iter().any(|l| l.contains("failed")),
        "the collector logged its retries: {lines:#?}"
    );
    assert!(failures > 0);
    for line in &lines {
        assert_clean("log line", line);
    }
}

#[test]
#[serial]
fn init_from_conf_logs_no_secret() {
    capture();
    take_lines();
    let mut cases = vec![format!("foo://u:{PASSWORD}@127.0.0.1:1/")];
    if cfg!(feature = "redis") {
        cases.push(format!("redis://:{PASSWORD}@127.0.0.1:1/0"));
    }
    for cs in cases {
        let conf = ProfilerConfig::default()
            .with_enabled(true)
            .with_hmac_keys(HMAC_KEY)
            .with_connection_string(cs);
        let guard = osprofiler::initializer::init_from_conf(&conf, "nova", "api", None);
        let _profiler = profiler::init(HMAC_KEY, None, None);
        profiler::start("rpc", None);
        profiler::stop(None);
        profiler::clean();
        let _ = notifier::flush(Duration::from_secs(2));
        drop(guard);
        notifier::reset();
    }
    let lines = take_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Could not initialize driver")),
        "the unknown driver was logged: {lines:#?}"
    );
    for line in &lines {
        assert_clean("log line", line);
    }
    #[cfg(feature = "tower")]
    osprofiler::web::reset_global();
}

#[test]
fn config_errors_never_echo_secrets() {
    let texts = [
        format!("[profiler]\nenabled = true\n\n  hmac_keys = {HMAC_KEY}\n"),
        format!("[profiler]\nhmac_keys {HMAC_KEY}\n"),
        format!("[profiler]\n\n  connection_string = redis://:{PASSWORD}@h:1/0\n"),
        format!("connection_string = redis://:{PASSWORD}@h:1/0\n"),
        format!("[profiler]\n\n  secret={PASSWORD}\n"),
    ];
    for text in texts {
        let error = ProfilerConfig::from_ini_str(&text).unwrap_err();
        assert_clean(&format!("config error for {text:?}"), &error.to_string());
        // Still says where and what.
        assert!(error.to_string().contains("<string>:"), "{error}");
    }
}
