//! The notification payload every driver stores, as Python osprofiler
//! writes it.

use serde_json::{Map, Value};

mod event;

#[cfg(feature = "tower")]
pub(crate) use event::write_escaped;

pub use event::{Event, Text};

/// One start or stop notification, before the driver adds `project` and
/// `service`.
///
/// Serialized with [`Notification::to_value`] it has the keys, key order and
/// formats of Python osprofiler 4.4.0:
/// `{"name", "base_id", "trace_id", "parent_id", "timestamp", "info", "project", "service"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// `<point name>-start` or `<point name>-stop`.
    pub name: String,
    /// The id shared by every element of the trace.
    pub base_id: String,
    /// The id of this element.
    pub trace_id: String,
    /// The id of the enclosing element.
    pub parent_id: String,
    /// UTC time as `%Y-%m-%dT%H:%M:%S.%f`.
    pub timestamp: String,
    /// Caller information; always holds `host` for events made by
    /// `start`/`stop`.
    pub info: Option<Map<String, Value>>,
}

impl Notification {
    /// The payload as JSON, with the driver's `project` and `service` added
    /// as Python's drivers do.
    pub fn to_value(&self, project: Option<&str>, service: Option<&str>) -> Value {
        let mut map = self.base_map();
        map.insert("project".into(), project.map_or(Value::Null, Value::from));
        map.insert("service".into(), service.map_or(Value::Null, Value::from));
        Value::Object(map)
    }

    /// The payload as JSON without `project`/`service` (what Python's
    /// profiler hands to `notifier.notify`).
    pub fn to_bare_value(&self) -> Value {
        Value::Object(self.base_map())
    }

    fn base_map(&self) -> Map<String, Value> {
        let mut map = Map::with_capacity(8);
        map.insert("name".into(), self.name.clone().into());
        map.insert("base_id".into(), self.base_id.clone().into());
        map.insert("trace_id".into(), self.trace_id.clone().into());
        map.insert("parent_id".into(), self.parent_id.clone().into());
        map.insert("timestamp".into(), self.timestamp.clone().into());
        if let Some(info) = &self.info {
            map.insert("info".into(), Value::Object(info.clone()));
        }
        map
    }

    /// Whether this is an error stop (its `info` has an `etype`), which
    /// drivers index when `filter_error_trace` is on.
    pub fn is_error(&self) -> bool {
        self.info
            .as_ref()
            .and_then(|i| i.get("etype"))
            .is_some_and(|e| !e.is_null())
    }
}

/// Formats microseconds since the Unix epoch (UTC) as
/// `%Y-%m-%dT%H:%M:%S.%f`, the timestamp format of every payload.
pub fn format_timestamp(unix_micros: i64) -> String {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        // Outside strftime's four-digit range; never produced by a clock.
        return format!("{year:04}-{month:02}-{day:02}T00:00:00.000000");
    }
    let mut out = String::with_capacity(26);
    let mut digits = |value: i64, width: u32, sep: Option<char>| {
        for i in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10_i64.pow(i) % 10) as u8));
        }
        if let Some(c) = sep {
            out.push(c);
        }
    };
    digits(year, 4, Some('-'));
    digits(month, 2, Some('-'));
    digits(day, 2, Some('T'));
    digits(secs_of_day / 3600, 2, Some(':'));
    digits(secs_of_day % 3600 / 60, 2, Some(':'));
    digits(secs_of_day % 60, 2, Some('.'));
    digits(micros, 6, None);
    out
}

/// Parses a `%Y-%m-%dT%H:%M:%S.%f` timestamp into microseconds since the
/// epoch. Like Python's `strptime` with `%f`, the fraction may have 1 to 6
/// digits.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 21 || b.len() > 26 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || b[19] != b'.' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let fraction = &text[20..];
    let mut micros = num(20..text.len())?;
    for _ in fraction.len()..6 {
        micros *= 10;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_strftime() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000");
        // datetime(2026, 11, 21, 9, 31, 31, 298649) in UTC
        let t = 1_795_253_491_298_649;
        assert_eq!(format_timestamp(t), "2026-11-21T09:31:31.298649");
        assert_eq!(parse_timestamp("2026-11-21T09:31:31.298649"), Some(t));
        assert_eq!(
            format_timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001"
        );
    }

    #[test]
    fn parse_accepts_short_fractions_and_rejects_garbage() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5"), Some(1_500_000));
        for bad in [
            "",
            "2026-13-01T00:00:00.000000",
            "2026-02-30T00:00:00.0",
            "x026-01-01T00:00:00.000000",
            "2026-01-01T00:00:00.",
            "2026-01-01T24:00:00.000000",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn payload_keys_in_python_order() {
        let n = Notification {
            name: "db-start".into(),
            base_id: "b".into(),
            trace_id: "t".into(),
            parent_id: "p".into(),
            timestamp: "1970-01-01T00:00:00.000000".into(),
            info: Some(Map::from_iter([("host".to_string(), Value::from("h"))])),
        };
        assert_eq!(
            serde_json::to_string(&n.to_value(Some("nova"), None)).unwrap(),
            r#"{"name":"db-start","base_id":"b","trace_id":"t","parent_id":"p","timestamp":"1970-01-01T00:00:00.000000","info":{"host":"h"},"project":"nova","service":null}"#
        );
    }
}
