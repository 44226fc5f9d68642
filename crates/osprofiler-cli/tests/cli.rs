//! The `osprofiler` binary, run as a user would.

use std::process::{Command, Output};

use osprofiler::web::{self, signed_unpack};

fn osprofiler(args: &[&str], hmac_env: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_osprofiler"));
    cmd.args(args).env_remove("OSPROFILER_HMAC_KEY");
    if let Some(key) = hmac_env {
        cmd.env("OSPROFILER_HMAC_KEY", key);
    }
    cmd.output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// The (X-Trace-Info, X-Trace-HMAC) values printed by `trace headers`.
fn headers(out: &Output) -> (String, String) {
    assert!(out.status.success(), "failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let info = lines[0]
        .strip_prefix("X-Trace-Info: ")
        .expect("X-Trace-Info line");
    let hmac = lines[1]
        .strip_prefix("X-Trace-HMAC: ")
        .expect("X-Trace-HMAC line");
    (info.to_string(), hmac.to_string())
}

#[test]
fn version_flags_print_the_bare_version() {
    for flag in ["-v", "--version"] {
        let out = osprofiler(&[flag], None);
        assert!(out.status.success());
        assert_eq!(
            text(&out.stdout),
            format!("{}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn headers_with_explicit_ids_match_the_library() {
    let out = osprofiler(
        &[
            "trace",
            "headers",
            "--hmac-key",
            "SECRET_KEY",
            "--base-id",
            "b",
            "--parent-id",
            "p",
        ],
        None,
    );
    let (info, hmac) = headers(&out);
    assert_eq!(
        (info.clone(), hmac.clone()),
        web::trace_headers("b", "p", "SECRET_KEY").unwrap()
    );
    let trace = signed_unpack(Some(&info), Some(&hmac), &["SECRET_KEY"]).unwrap();
    assert_eq!(
        (trace.base_id.as_str(), trace.parent_id.as_deref()),
        ("b", Some("p"))
    );
    assert_eq!(
        text(&out.stderr),
        "",
        "nothing on stderr when the base id is given"
    );
}

#[test]
fn key_comes_from_the_environment_and_the_flag_wins() {
    let (info, hmac) = headers(&osprofiler(
        &["trace", "headers", "--base-id", "b"],
        Some("from-env"),
    ));
    assert!(signed_unpack(Some(&info), Some(&hmac), &["from-env"]).is_some());
    let (info, hmac) = headers(&osprofiler(
        &["trace", "headers", "--hmac-key", "flag", "--base-id", "b"],
        Some("from-env"),
    ));
    assert!(signed_unpack(Some(&info), Some(&hmac), &["flag"]).is_some());
    assert!(signed_unpack(Some(&info), Some(&hmac), &["from-env"]).is_none());
}

#[test]
fn fresh_base_id_is_printed_on_stderr_and_is_the_parent() {
    let out = osprofiler(&["trace", "headers", "--hmac-key", "k"], None);
    let (info, hmac) = headers(&out);
    let stderr = text(&out.stderr);
    let id = stderr
        .strip_prefix("Trace ID: ")
        .and_then(|s| s.strip_suffix('\n'))
        .expect(&stderr);
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "uuid4: {id}");
    let trace = signed_unpack(Some(&info), Some(&hmac), &["k"]).unwrap();
    assert_eq!(trace.base_id, id);
    assert_eq!(trace.parent_id.as_deref(), Some(id));
    // Two runs, two traces.
    let again = osprofiler(&["trace", "headers", "--hmac-key", "k"], None);
    assert_ne!(text(&again.stderr), stderr);
}

#[test]
fn missing_key_is_a_one_line_error() {
    for env in [None, Some("")] {
        let out = osprofiler(&["trace", "headers"], env);
        assert!(!out.status.success());
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stdout), "");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("--hmac-key") && stderr.contains("OSPROFILER_HMAC_KEY"),
            "{stderr}"
        );
    }
}

#[test]
fn empty_ids_are_refused() {
    for flag in ["--base-id", "--parent-id"] {
        let out = osprofiler(&["trace", "headers", "--hmac-key", "k", flag, ""], None);
        assert!(!out.status.success(), "{flag} ''");
    }
}

#[test]
fn no_arguments_prints_help_and_fails() {
    let out = osprofiler(&[], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Usage: osprofiler"));
}
