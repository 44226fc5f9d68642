//! Headers printed by `osprofiler trace headers` are trusted by Python
//! osprofiler 4.4.0 (`signed_unpack` + `WsgiMiddleware._trace_is_valid`)
//! with the right key, and only with it.

#[path = "../../osprofiler/tests/common/python.rs"]
mod python;

use std::process::Command;

use serde_json::{json, Value};

fn cli_headers(args: &[&str]) -> (String, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(["trace", "headers"])
        .args(args)
        .env_remove("OSPROFILER_HMAC_KEY")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let info = lines
        .next()
        .unwrap()
        .strip_prefix("X-Trace-Info: ")
        .unwrap()
        .to_string();
    let hmac = lines
        .next()
        .unwrap()
        .strip_prefix("X-Trace-HMAC: ")
        .unwrap()
        .to_string();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let trace_id = stderr
        .trim()
        .strip_prefix("Trace ID: ")
        .unwrap_or_default()
        .to_string();
    (info, hmac, trace_id)
}

#[test]
fn python_trusts_cli_headers_with_the_right_key_only() {
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for (key, args) in [
        ("SECRET_KEY", vec!["--base-id", "b", "--parent-id", "p"]),
        ("clé ☃", vec!["--base-id", "bäse"]),
        ("k", vec![]),
    ] {
        let mut full = vec!["--hmac-key", key];
        full.extend(&args);
        let (info, hmac, fresh) = cli_headers(&full);
        let base = args
            .iter()
            .skip_while(|a| **a != "--base-id")
            .nth(1)
            .map_or(fresh.clone(), |s| s.to_string());
        let parent = args
            .iter()
            .skip_while(|a| **a != "--parent-id")
            .nth(1)
            .map_or(base.clone(), |s| s.to_string());
        for keys in [key.to_string(), format!("other, {key}")] {
            requests.push(json!({"info": info, "hmac": hmac, "keys": keys}));
            expected.push(Some((base.clone(), parent.clone(), key)));
        }
        for keys in ["other", "", "SECRET_KEYS"] {
            requests.push(json!({"info": info, "hmac": hmac, "keys": keys}));
            expected.push(None);
        }
    }
    let answers: Vec<Value> = python::run_json_lines("core_referee.py", &["verify"], &requests);
    for ((request, answer), want) in requests.iter().zip(&answers).zip(&expected) {
        match want {
            Some((base, parent, key)) => {
                assert_eq!(answer["accept"], true, "python refused {request}: {answer}");
                assert_eq!(answer["base_id"], json!(base));
                assert_eq!(answer["parent_id"], json!(parent));
                assert_eq!(answer["hmac_key"], json!(key));
            }
            None => assert_eq!(
                answer["accept"], false,
                "python accepted {request}: {answer}"
            ),
        }
    }
}
