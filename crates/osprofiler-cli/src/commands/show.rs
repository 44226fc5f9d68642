//! `osprofiler trace show`: one trace as JSON (upstream's report), HTML,
//! DOT, Chrome trace events, or a tree in the terminal.

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
    let loaded = load(&args)?;
    let found = match &loaded {
        Loaded::Report(report) => !report.is_empty(),
        Loaded::Value(value) => value
            .get("children")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty()),
    };
    if !found {
        bail!(
            "Trace with UUID {} not found. Please check the HMAC key used in the command.",
            args.trace
        );
    }
    if args.json && args.render_dot.is_none() {
        // Streamed: a report of 30k spans is tens of MB of JSON.
        let written = write_output(args.out.as_deref(), |out| match &loaded {
            Loaded::Report(report) => report.write_python_json(out),
            Loaded::Value(value) => osprofiler::report::write_python_json_value(value, out),
        });
        // The process ends here: freeing a large report piece by piece
        // would only delay the exit.
        std::mem::forget(loaded);
        return written;
    }
    let report = match loaded {
        Loaded::Report(report) => report.to_value(),
        Loaded::Value(value) => value,
    };
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
    // On stdout `write_output` adds the final newline.
    let output = match args.out {
        Some(_) => &output,
        None => output.strip_suffix('\n').unwrap_or(&output),
    };
    write_output(args.out.as_deref(), |out| out.write_all(output.as_bytes()))
}

/// Runs `write` on a buffered `--out` file, or on stdout followed by a
/// newline (Python `print`s its output; the file gets it as is).
fn write_output(
    out: Option<&Path>,
    write: impl FnOnce(&mut Output) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let context = || match out {
        Some(path) => format!("cannot write {}", path.display()),
        None => "cannot write to stdout".to_string(),
    };
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::fs::File::create(path).with_context(context)?),
        None => Box::new(std::io::stdout().lock()),
    };
    // A concrete buffered writer: the many small writes of the JSON
    // serializer are inlined copies, the sink is called once per 64 KB.
    let mut output = Output::with_capacity(1 << 16, sink);
    write(&mut output).with_context(context)?;
    if out.is_none() {
        output.write_all(b"\n").with_context(context)?;
    }
    output.flush().with_context(context)
}

/// Where `trace show` writes.
type Output = std::io::BufWriter<Box<dyn Write>>;

/// A report read from the store, or a saved JSON report.
enum Loaded {
    Report(osprofiler::report::Report),
    Value(Value),
}

/// The report from a JSON file, or from the store.
fn load(args: &Args) -> anyhow::Result<Loaded> {
    let path = Path::new(&args.trace);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON report", path.display()))?;
        return Ok(Loaded::Value(value));
    }
    let mut conf = ProfilerConfig::default();
    conf.transport_url = args.transport_url.clone();
    conf.idle_timeout_seconds = args.idle_timeout;
    let driver = args.store.open(&conf)?;
    let report = with_progress("reading the trace", || driver.get_report(&args.trace))?;
    if report.skipped() > 0 {
        eprintln!(
            "warning: skipped {} corrupt or duplicate events",
            report.skipped()
        );
    }
    if report.cycles_broken() > 0 {
        eprintln!(
            "warning: cut {} loops of parent ids (the first element of each loop is shown as a root)",
            report.cycles_broken()
        );
    }
    Ok(Loaded::Report(report))
}

/// `json.dumps(report, indent=2, separators=(",", ": "))` as upstream
/// prints it: same layout, non-ASCII escaped, floats as Python's `repr`.
fn python_pretty_json(report: &Value) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = osprofiler::report::write_python_json_value(report, &mut out);
    String::from_utf8(out).unwrap_or_default()
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
