//! `osprofiler trace show`: one trace as JSON (upstream's report), HTML,
//! DOT, Chrome trace events, or a tree in the terminal.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use osprofiler::config::ProfilerConfig;
use serde_json::Value;

use super::store::{with_progress, StoreArgs};
use crate::render;

/// Arguments of `trace show`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("format").multiple(false))]
pub(crate) struct Args {
    /// Trace id, or the path of a JSON report saved with `--json`.
    trace: String,

    #[command(flatten)]
    store: StoreArgs,

    /// Oslo.messaging transport URL (messaging:// driver only), e.g.
    /// rabbit://user:password@host:5672/
    #[arg(long)]
    transport_url: Option<String>,

    /// How long to wait for the trace to finish, in seconds (messaging://
    /// driver only).
    #[arg(long, default_value_t = 1)]
    idle_timeout: u64,

    /// Show the trace in JSON (upstream's report).
    #[arg(long, group = "format")]
    json: bool,

    /// Show the trace as a self-contained HTML page.
    #[arg(long, group = "format")]
    html: bool,

    /// Show the trace in the DOT language (Graphviz).
    #[arg(long, group = "format")]
    dot: bool,

    /// Show the trace as Chrome trace-event JSON (Perfetto,
    /// chrome://tracing).
    #[arg(long, group = "format")]
    chrome: bool,

    /// Accepted for compatibility; the HTML page is always self-contained.
    #[arg(long)]
    local_libs: bool,

    /// Also render the DOT graph as PDF into FILE (`.pdf` is appended unless
    /// present), with Graphviz `dot`.
    #[arg(long, value_name = "FILE")]
    render_dot: Option<PathBuf>,

    /// Save the output in FILE instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let report = load(&args)?;
    let found = report
        .get("children")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if !found {
        bail!(
            "Trace with UUID {} not found. Please check the HMAC key used in the command.",
            args.trace
        );
    }
    if let Some(file) = &args.render_dot {
        render_pdf(&render::dot::dot(&report), file)?;
    }
    let output = if args.json {
        python_pretty_json(&report)
    } else if args.html {
        render::html::html(&report)
    } else if args.dot {
        render::dot::dot(&report)
    } else if args.chrome {
        render::chrome::chrome(&report)
    } else {
        let color = args.out.is_none() && std::io::stdout().is_terminal();
        render::tree::tree(&report, color)
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, output).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(output.as_bytes())?;
            if !output.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
            Ok(())
        }
    }
}

/// The report from a JSON file, or from the store.
fn load(args: &Args) -> anyhow::Result<Value> {
    let path = Path::new(&args.trace);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON report", path.display()));
    }
    let mut conf = ProfilerConfig::default();
    conf.transport_url = args.transport_url.clone();
    conf.idle_timeout_seconds = args.idle_timeout;
    let driver = args.store.open(&conf)?;
    let report = with_progress("reading the trace", || driver.get_report(&args.trace))?;
    if report.skipped() > 0 {
        eprintln!(
            "warning: {} malformed or duplicate events were skipped",
            report.skipped()
        );
    }
    Ok(report.to_value())
}

/// `json.dumps(report, indent=2, separators=(",", ": "))` as upstream
/// prints it: same layout, non-ASCII escaped.
fn python_pretty_json(report: &Value) -> String {
    let pretty = serde_json::to_string_pretty(report).unwrap_or_default();
    // Outside strings JSON text is ASCII, so every non-ASCII character is
    // inside a string and can be escaped in place.
    let mut out = String::with_capacity(pretty.len());
    for c in pretty.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// Renders DOT source to PDF with Graphviz, as upstream's `--render-dot`.
fn render_pdf(source: &str, file: &Path) -> anyhow::Result<()> {
    let target = if file.extension().is_some_and(|e| e == "pdf") {
        file.to_path_buf()
    } else {
        let mut name = file.as_os_str().to_owned();
        name.push(".pdf");
        PathBuf::from(name)
    };
    let mut child = match Command::new("dot")
        .arg("-Tpdf")
        .arg("-o")
        .arg(&target)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("--render-dot needs Graphviz: the `dot` program was not found (Debian: apt-get install graphviz)")
        }
        Err(e) => return Err(e).context("cannot run Graphviz `dot`"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(source.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "Graphviz `dot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_and_ascii_like_python() {
        let value = serde_json::json!({"a": [1, {"b": "é😀"}], "c": {}});
        assert_eq!(
            python_pretty_json(&value),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"\\u00e9\\ud83d\\ude00\"\n    }\n  ],\n  \"c\": {}\n}"
        );
    }
}
