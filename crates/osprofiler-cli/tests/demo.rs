//! `osprofiler demo`: the README's main job on the embedded store, and the
//! demo cloud serving a Python osprofiler client, one trace across both.

#[path = "../../osprofiler/tests/common/python.rs"]
mod python;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn osprofiler() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_osprofiler"));
    command
        .env_remove("OSPROFILER_CONNECTION_STRING")
        .env_remove("OSPROFILER_HMAC_KEY");
    command
}

/// `(name, service)` of each node, depth first, with its depth; siblings
/// by name (those started in the same millisecond come in either order).
fn outline(node: &Value, depth: usize, out: &mut Vec<(usize, String, String)>) {
    let mut children: Vec<&Value> = node["children"].as_array().into_iter().flatten().collect();
    children.sort_by_key(|c| c["info"]["name"].as_str().unwrap_or("").to_string());
    for child in children {
        let info = &child["info"];
        out.push((
            depth,
            info["name"].as_str().unwrap_or("").into(),
            info["service"].as_str().unwrap_or("").into(),
        ));
        outline(child, depth + 1, out);
    }
}

/// The tree as `(depth, name, service)` rows (see [`outline`]).
fn shape(report: &Value) -> Vec<(usize, String, String)> {
    let mut nodes = Vec::new();
    outline(report, 0, &mut nodes);
    nodes
}

fn function_names(node: &Value, out: &mut Vec<String>) {
    for child in node["children"].as_array().into_iter().flatten() {
        if let Some(name) =
            child["info"]["meta.raw_payload.rpc-start"]["info"]["function"]["name"].as_str()
        {
            out.push(name.to_string());
        }
        function_names(child, out);
    }
}

#[test]
fn demo_records_one_trace_in_the_embedded_store() {
    let data = std::env::temp_dir().join(format!("osprofiler-demo-{}", std::process::id()));
    let out = osprofiler()
        .arg("demo")
        .env("XDG_DATA_HOME", &data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Trace ID: "))
        .expect("prints the trace id")
        .to_string();
    assert!(
        stdout.contains(&format!(
            "osprofiler trace show --html --out trace.html {trace_id}"
        )),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("using SECRET_KEY"),
        "warns about the default key"
    );
    assert!(
        data.join("osprofiler/traces.db").exists(),
        "the embedded default store"
    );

    let json = osprofiler()
        .args(["trace", "show", "--json", &trace_id])
        .env("XDG_DATA_HOME", &data)
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        shape(&report),
        [
            (0, String::from("wsgi"), String::from("api")),
            (1, String::from("http"), String::from("api")),
            (2, String::from("wsgi"), String::from("compute")),
            (3, String::from("rpc"), String::from("compute")),
            (4, String::from("db"), String::from("compute")),
            (4, String::from("rpc"), String::from("compute"))
        ],
        "{report:#}"
    );
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn python_client_and_demo_cloud_share_one_trace() {
    let redis = "redis://127.0.0.1:6379/8";
    match Command::new("redis-cli").args(["-n", "8", "FLUSHDB"]).output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("Redis is not reachable on 127.0.0.1:6379 (redis-cli -n 8 FLUSHDB failed): run scripts/services"),
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut demo = osprofiler()
        .args([
            "demo",
            "--serve",
            "--listen",
            &listen,
            "--connection-string",
            redis,
            "--hmac-key",
            "demo-key",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("demo exited before listening").unwrap();
        if line.starts_with("api listening on") {
            break;
        }
        assert!(Instant::now() < deadline, "demo did not start");
    }

    let reply = python::run(
        "demo_client.py",
        &[
            &format!("http://{listen}"),
            redis,
            "demo-key",
            "not-the-key",
        ],
        "",
    );
    let ids: Value = serde_json::from_str(reply.trim()).unwrap();
    let (traced, forged) = (
        ids["traced"].as_str().unwrap(),
        ids["forged"].as_str().unwrap(),
    );

    // SIGTERM: the demo flushes every notification before it exits.
    let status = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = demo.wait().unwrap();
    assert!(exit.success(), "demo exit: {exit:?}");

    let upstream = python::python().with_file_name("osprofiler");
    let shown = Command::new(&upstream)
        .args([
            "trace",
            "show",
            "--json",
            "--connection-string",
            redis,
            traced,
        ])
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    let report: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shape(&report),
        [
            (0, String::from("client"), String::from("client")),
            (1, String::from("wsgi"), String::from("api")),
            (2, String::from("http"), String::from("api")),
            (3, String::from("wsgi"), String::from("compute")),
            (4, String::from("rpc"), String::from("compute")),
            (5, String::from("db"), String::from("compute")),
            (5, String::from("rpc"), String::from("compute")),
        ],
        "one tree, Python span on top:\n{report:#}"
    );
    let mut functions = Vec::new();
    function_names(&report, &mut functions);
    assert!(
        functions
            .iter()
            .any(|f| f.ends_with("ComputeManager::create_server")),
        "{functions:?}"
    );
    assert!(
        functions
            .iter()
            .any(|f| f.ends_with("ComputeManager::schedule")),
        "{functions:?}"
    );
    let statement = report.to_string();
    assert!(
        statement.contains("INSERT INTO servers"),
        "db span has its statement"
    );

    // The wrong-key request left nothing in Redis.
    let keys = Command::new("redis-cli")
        .args(["-n", "8", "KEYS", &format!("*{forged}*")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&keys.stdout).trim(),
        "",
        "a forged request was traced"
    );
}
