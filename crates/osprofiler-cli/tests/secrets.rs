//! The `osprofiler` binary never prints a connection-string password or an
//! HMAC key (issue #8 item 6): every command that opens a store is run
//! against unreachable or malformed stores whose URLs hold a password, with
//! the key given by flag and by environment, and stdout and stderr are
//! searched for the secrets.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cretPw";
const HMAC_KEY: &str = "hmacK3y-do-not-print";

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osprofiler"));
    cmd.args(args)
        .env_remove("OSPROFILER_HMAC_KEY")
        .env_remove("OSPROFILER_CONNECTION_STRING")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("osprofiler runs");
    // A hang is a failure too, not a stuck CI job.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("osprofiler {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn assert_clean(args: &[&str], out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in [PASSWORD, HMAC_KEY, "pct!word", "pct%21word"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "osprofiler {args:?} printed {secret:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
    }
}

fn stores() -> Vec<String> {
    vec![
        format!("redis://:{PASSWORD}@127.0.0.1:1/0"),
        "redis://:pct%21word@127.0.0.1:1/0".to_string(),
        format!("redis://:{PASSWORD}@127.0.0.1:notaport/0"),
        format!("redissentinel://:{PASSWORD}@127.0.0.1:1/0"),
        format!("postgresql://user:{PASSWORD}@127.0.0.1:1/db"),
        format!("postgresql+psycopg2://user:{PASSWORD}@[bad/db"),
        format!("mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/x"),
        format!("mysql://root:{PASSWORD}@127.0.0.1:99999/x"),
        format!("otlp://user:{PASSWORD}@127.0.0.1:1"),
        format!("foo://user:{PASSWORD}@127.0.0.1:1/"),
    ]
}

#[test]
fn show_and_list_against_failing_stores_print_no_password() {
    for cs in stores() {
        for args in [
            vec!["trace", "show", "b", "--connection-string", &cs],
            vec!["trace", "show", "b", "--json", "--connection-string", &cs],
            vec!["trace", "list", "--connection-string", &cs],
            vec!["trace", "list", "--error-trace", "--connection-string", &cs],
        ] {
            let out = run(&args, &[("OSPROFILER_HMAC_KEY", HMAC_KEY)]);
            assert!(!out.status.success(), "{args:?}: nothing listens there");
            assert!(!out.stderr.is_empty(), "{args:?}: says why it failed");
            assert_clean(&args, &out);
        }
        // The same store from the environment.
        let args = ["trace", "show", "b"];
        let out = run(&args, &[("OSPROFILER_CONNECTION_STRING", &cs)]);
        assert!(!out.status.success(), "{cs} from env");
        assert_clean(&args, &out);
    }
}

#[test]
fn messaging_transport_url_password_is_never_printed() {
    for url in [
        format!("rabbit://guest:{PASSWORD}@127.0.0.1:1/"),
        format!("amqp://guest:{PASSWORD}@127.0.0.1:1,guest:{PASSWORD}@127.0.0.2:1/vh"),
        format!("rabbit://guest:{PASSWORD}@127.0.0.1:x/"),
        format!("kafka://guest:{PASSWORD}@127.0.0.1:1/"),
    ] {
        let args = [
            "trace",
            "show",
            "b",
            "--connection-string",
            "messaging://",
            "--transport-url",
            &url,
        ];
        let out = run(&args, &[]);
        assert!(!out.status.success(), "{url}: no broker there");
        assert_clean(&args, &out);
    }
}

#[test]
fn hmac_key_is_never_printed() {
    let by_flag = ["trace", "headers", "--hmac-key", HMAC_KEY, "--base-id", "b"];
    let out = run(&by_flag, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("X-Trace-HMAC: "));
    assert_clean(&by_flag, &out);

    let by_env = ["trace", "headers"];
    let out = run(&by_env, &[("OSPROFILER_HMAC_KEY", HMAC_KEY)]);
    assert!(out.status.success());
    assert_clean(&by_env, &out);

    // Help shows which variables are read, never their values.
    let cs = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    for help in [
        vec!["trace", "headers", "--help"],
        vec!["trace", "show", "--help"],
        vec!["trace", "list", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = run(
            &help,
            &[
                ("OSPROFILER_HMAC_KEY", HMAC_KEY),
                ("OSPROFILER_CONNECTION_STRING", &cs),
            ],
        );
        assert!(out.status.success(), "{help:?}");
        assert_clean(&help, &out);
    }
}

#[test]
fn demo_with_an_unreachable_store_prints_no_secret() {
    let cs = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
    let args = ["demo", "--hmac-key", HMAC_KEY, "--connection-string", &cs];
    let out = run(&args, &[]);
    // Whatever the demo decides about a dead store, it says so without the
    // password or the key.
    assert!(
        !out.stderr.is_empty() || !out.stdout.is_empty(),
        "the demo reports something"
    );
    assert_clean(&args, &out);
}
