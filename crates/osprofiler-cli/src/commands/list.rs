//! `osprofiler trace list`: one row per stored trace, as upstream's
//! two-column table, oldest first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use osprofiler::config::ProfilerConfig;
use osprofiler::notification::{format_timestamp, parse_timestamp};
use serde_json::{Map, Value};

use super::store::{with_progress, StoreArgs};

/// Arguments of `trace list`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    store: StoreArgs,

    /// List only traces that contain an error. As upstream, also takes a
    /// value (`--error-trace True`); any non-empty value turns it on.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = python_bool)]
    error_trace: Option<bool>,

    /// Show only the N most recent traces.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// Show only traces started at or after this time: a UTC timestamp
    /// (`2026-11-21`, `2026-11-21T09:30:00`) or an age (`90s`, `15m`, `2h`,
    /// `7d`).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<String>,

    /// Show only traces whose first event came from this service.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
}

/// Python's `type=bool`: any non-empty string is true.
fn python_bool(value: &str) -> Result<bool, String> {
    Ok(!value.is_empty())
}

/// Turns `--since` into a timestamp prefix comparable with stored ones.
fn parse_since(value: &str) -> Result<String, String> {
    let units = [('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)];
    if let Some((unit, seconds)) = units.iter().find(|(u, _)| value.ends_with(*u)) {
        if let Ok(n) = value.trim_end_matches(*unit).parse::<u64>() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            let since = now.saturating_sub(Duration::from_secs(n.saturating_mul(*seconds)));
            return Ok(format_timestamp(since.as_micros() as i64));
        }
    }
    // Complete a date or a date-time into a full timestamp and check it.
    let full = match value.len() {
        10 => format!("{value}T00:00:00.000000"),
        19 => format!("{value}.000000"),
        _ => value.to_string(),
    };
    match parse_timestamp(&full) {
        Some(_) => Ok(full),
        None => Err(format!(
            "`{value}` is neither a UTC time like 2026-11-21T09:30:00 nor an age like 15m"
        )),
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let driver = args.store.open(&ProfilerConfig::default())?;
    let error_trace = args.error_trace.unwrap_or(false);
    let mut fields = vec!["base_id", "timestamp"];
    if args.service.is_some() {
        fields.push("service");
    }
    let traces = with_progress("listing traces", || {
        if error_trace {
            driver.list_error_traces()
        } else {
            driver.list_traces(&fields)
        }
    })?;
    let rows = select(traces, &args);
    print!("{}", table(&["base_id", "timestamp"], &rows));
    Ok(())
}

fn text(trace: &Map<String, Value>, field: &str) -> String {
    match trace.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Filters, sorts oldest first and keeps the `--limit` most recent.
fn select(traces: Vec<Map<String, Value>>, args: &Args) -> Vec<[String; 2]> {
    let mut rows: Vec<(String, String, String)> = traces
        .iter()
        .map(|t| (text(t, "timestamp"), text(t, "base_id"), text(t, "service")))
        .filter(|(ts, _, _)| {
            args.since
                .as_ref()
                .map_or(true, |since| ts.as_str() >= since.as_str())
        })
        .filter(|(_, _, service)| args.service.as_ref().map_or(true, |s| s == service))
        .collect();
    rows.sort();
    if let Some(limit) = args.limit {
        let skip = rows.len().saturating_sub(limit);
        rows.drain(..skip);
    }
    rows.into_iter().map(|(ts, id, _)| [id, ts]).collect()
}

/// The table prettytable prints with left alignment.
fn table(headers: &[&str; 2], rows: &[[String; 2]]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1)];
    let rule = format!(
        "+{}+{}+\n",
        "-".repeat(widths[0] + 2),
        "-".repeat(widths[1] + 2)
    );
    let line = |cells: [&str; 2]| {
        let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - s.chars().count()));
        format!(
            "| {} | {} |\n",
            pad(cells[0], widths[0]),
            pad(cells[1], widths[1])
        )
    };
    let mut out = String::new();
    out.push_str(&rule);
    out.push_str(&line([headers[0], headers[1]]));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line([&row[0], &row[1]]));
    }
    // prettytable closes the table even when it has no rows.
    out.push_str(&rule);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_prettytable() {
        assert_eq!(
            table(&["base_id", "timestamp"], &[]),
            "+---------+-----------+\n| base_id | timestamp |\n+---------+-----------+\n+---------+-----------+\n"
        );
        let rows = [["abc".to_string(), "2026-11-21T09:31:31.298649".to_string()]];
        assert_eq!(
            table(&["base_id", "timestamp"], &rows),
            "+---------+----------------------------+\n\
             | base_id | timestamp                  |\n\
             +---------+----------------------------+\n\
             | abc     | 2026-11-21T09:31:31.298649 |\n\
             +---------+----------------------------+\n"
        );
    }

    #[test]
    fn since_accepts_dates_and_ages() {
        assert_eq!(
            parse_since("2026-11-21").unwrap(),
            "2026-11-21T00:00:00.000000"
        );
        assert_eq!(
            parse_since("2026-11-21T09:30:00").unwrap(),
            "2026-11-21T09:30:00.000000"
        );
        assert!(parse_since("15m").unwrap().as_str() > "2026");
        assert!(parse_since("yesterday").is_err());
        assert_eq!(python_bool("False"), Ok(true));
        assert_eq!(python_bool(""), Ok(false));
    }
}
