//! The `data` table of the SQL drivers, as upstream's `sqlalchemy` driver
//! lays it out, and the conversion between payloads and rows. Shared by
//! `sqlite.rs` and `sql.rs` (PostgreSQL/MySQL).
//!
//! Upstream's `notify` pops `base_id`, `timestamp`, `parent_id`,
//! `trace_id`, `project`, `host`, `service` and `name` out of the payload
//! into their own columns (`project`/`host`/`service` default to the
//! driver's own, since payloads don't carry them) and stores the rest,
//! normally just `{"info": {...}}`, in `data`: `jsonutils.dumps(rest)`,
//! which SQLAlchemy's `JSON` column type encodes once more. So the column
//! holds a JSON *string literal* whose content is the JSON object:
//! `"{\"info\": {\"host\": \"x\"}}"`. [`Row::from_notification`] writes
//! exactly those bytes; [`Row::data_object`] also accepts a plain object,
//! in case another writer stored it single-encoded.
//!
//! Reading back: [`Row::to_payload`] rebuilds the payload a Redis-style
//! driver would hold (for `get_events`), while [`Row::append_to_report`]
//! feeds the report the way upstream's `SQLAlchemyDriver.get_report` does:
//! the node's `host` is the `host` column and `meta.raw_payload.<name>` is
//! the `data` object only. SQL drivers override `Driver::get_report` with
//! [`report_from_rows`] so their report JSON is upstream's.

#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use serde_json::{Map, Value};

use crate::notification::Notification;
use crate::pyjson;
use crate::report::{Event, Report, ReportBuilder};

/// Name of the table.
pub(crate) const TABLE: &str = "data";

/// The columns after `id`, in table order (the order of `INSERT`s and
/// `SELECT`s in this module's helpers).
pub(crate) const COLUMNS: [&str; 9] = [
    "timestamp",
    "base_id",
    "parent_id",
    "trace_id",
    "project",
    "host",
    "service",
    "name",
    "data",
];

/// Columns upstream indexes, with SQLAlchemy's index names (`ix_data_<column>`).
pub(crate) const INDEXED_COLUMNS: [&str; 8] = [
    "timestamp",
    "base_id",
    "parent_id",
    "trace_id",
    "project",
    "host",
    "service",
    "name",
];

/// SQL dialects that create the table slightly differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Each variant is used by its driver's feature only.
pub(crate) enum Dialect {
    /// SQLite: `id INTEGER` primary key is the rowid.
    Sqlite,
    /// PostgreSQL: `SERIAL` id.
    Postgres,
    /// MySQL/MariaDB: `AUTO_INCREMENT` id, indexes declared in the table.
    Mysql,
}

/// Statements that create the table and its indexes if missing, with the
/// column types SQLAlchemy emits for upstream's table (`VARCHAR(26)`
/// timestamp, `VARCHAR(255)` ids and names, `JSON` data). Run them in
/// order; each is idempotent.
#[allow(dead_code)] // Used by the `sqlite`, `postgres` and `mysql` features.
pub(crate) fn create_statements(dialect: Dialect) -> Vec<String> {
    let id = match dialect {
        Dialect::Sqlite => "id INTEGER NOT NULL",
        Dialect::Postgres => "id SERIAL NOT NULL",
        Dialect::Mysql => "id INTEGER NOT NULL AUTO_INCREMENT",
    };
    let mut table = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (\n\t{id}, \n\ttimestamp VARCHAR(26), \n\tbase_id VARCHAR(255), \n\t\
         parent_id VARCHAR(255), \n\ttrace_id VARCHAR(255), \n\tproject VARCHAR(255), \n\thost VARCHAR(255), \n\t\
         service VARCHAR(255), \n\tname VARCHAR(255), \n\tdata JSON, \n\tPRIMARY KEY (id)"
    );
    let mut out = Vec::new();
    match dialect {
        Dialect::Mysql => {
            // MySQL has no CREATE INDEX IF NOT EXISTS: declare them inline.
            for column in INDEXED_COLUMNS {
                table.push_str(&format!(", \n\tINDEX ix_{TABLE}_{column} ({column})"));
            }
            table.push_str("\n)");
            out.push(table);
        }
        Dialect::Sqlite | Dialect::Postgres => {
            table.push_str("\n)");
            out.push(table);
            for column in INDEXED_COLUMNS {
                out.push(format!(
                    "CREATE INDEX IF NOT EXISTS ix_{TABLE}_{column} ON {TABLE} ({column})"
                ));
            }
        }
    }
    out
}

/// Table of traces with an error stop, written when `filter_error_trace`
/// is on. Upstream's SQL driver has no such index (it ignores the option);
/// this is the equivalent of the Redis driver's `osprofiler_error:<base_id>`
/// keys: one row per `base_id` holding the timestamp of its latest error
/// stop.
pub(crate) const ERROR_TABLE: &str = "error_traces";

/// Statement creating [`ERROR_TABLE`] if missing (same for every dialect).
pub(crate) fn create_error_table_statement() -> String {
    format!("CREATE TABLE IF NOT EXISTS {ERROR_TABLE} (\n\tbase_id VARCHAR(255) NOT NULL, \n\ttimestamp VARCHAR(26), \n\tPRIMARY KEY (base_id)\n)")
}

/// The driver's own identity, used for the columns payloads don't carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) project: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) host: Option<String>,
}

/// One row of `data`, without `id`. Every column is nullable, as upstream's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) timestamp: Option<String>,
    pub(crate) base_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) name: Option<String>,
    /// Raw text of the `data` column.
    pub(crate) data: Option<String>,
}

/// Why a row cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowError {
    /// `data` is NULL, not JSON, or not (the JSON string of) an object.
    BadData,
}

impl Row {
    /// The row upstream's `notify` writes for this notification.
    pub(crate) fn from_notification(n: &Notification, identity: &Identity) -> Row {
        let mut rest = Map::new();
        if let Some(info) = &n.info {
            rest.insert("info".into(), Value::Object(info.clone()));
        }
        Row {
            timestamp: Some(n.timestamp.clone()),
            base_id: Some(n.base_id.clone()),
            parent_id: Some(n.parent_id.clone()),
            trace_id: Some(n.trace_id.clone()),
            project: identity.project.clone(),
            host: identity.host.clone(),
            service: identity.service.clone(),
            name: Some(n.name.clone()),
            // jsonutils.dumps(rest), then the JSON column type's json.dumps.
            data: Some(pyjson::quote(&pyjson::to_string(&Value::Object(rest)))),
        }
    }

    /// The column values in [`COLUMNS`] order, for binding to an `INSERT`.
    #[allow(dead_code)] // Used by the `sqlite`, `postgres` and `mysql` features.
    pub(crate) fn values(&self) -> [Option<&str>; 9] {
        [
            self.timestamp.as_deref(),
            self.base_id.as_deref(),
            self.parent_id.as_deref(),
            self.trace_id.as_deref(),
            self.project.as_deref(),
            self.host.as_deref(),
            self.service.as_deref(),
            self.name.as_deref(),
            self.data.as_deref(),
        ]
    }

    /// Builds a row from column values in [`COLUMNS`] order.
    #[allow(dead_code)] // Used by the `sqlite`, `postgres` and `mysql` features.
    pub(crate) fn from_values(values: [Option<String>; 9]) -> Row {
        let [timestamp, base_id, parent_id, trace_id, project, host, service, name, data] = values;
        Row {
            timestamp,
            base_id,
            parent_id,
            trace_id,
            project,
            host,
            service,
            name,
            data,
        }
    }

    /// The decoded `data` column: upstream's double-encoded form, or a
    /// plain JSON object.
    pub(crate) fn data_object(&self) -> Result<Map<String, Value>, RowError> {
        let text = self.data.as_deref().ok_or(RowError::BadData)?;
        match serde_json::from_str::<Value>(text).map_err(|_| RowError::BadData)? {
            Value::Object(map) => Ok(map),
            Value::String(inner) => match serde_json::from_str::<Value>(&inner) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(RowError::BadData),
            },
            _ => Err(RowError::BadData),
        }
    }

    /// The payload as a Redis-style driver stores it:
    /// `{"name", "base_id", "trace_id", "parent_id", "timestamp", <data
    /// keys, i.e. "info">, "project", "service"}`. NULL id/name/timestamp
    /// columns are left out (the payload lacked them); `project` and
    /// `service` are always present. The `host` column is the writing
    /// driver's host, not part of the payload, and is not included.
    pub(crate) fn to_payload(&self) -> Result<Value, RowError> {
        let data = self.data_object()?;
        let mut map = Map::with_capacity(data.len() + 7);
        let columns = [
            ("name", &self.name),
            ("base_id", &self.base_id),
            ("trace_id", &self.trace_id),
            ("parent_id", &self.parent_id),
            ("timestamp", &self.timestamp),
        ];
        for (key, value) in columns {
            if let Some(value) = value {
                map.insert(key.into(), Value::String(value.clone()));
            }
        }
        for (key, value) in data {
            if !COLUMNS.contains(&key.as_str()) {
                map.insert(key, value);
            }
        }
        map.insert(
            "project".into(),
            self.project.clone().map_or(Value::Null, Value::String),
        );
        map.insert(
            "service".into(),
            self.service.clone().map_or(Value::Null, Value::String),
        );
        Ok(Value::Object(map))
    }

    /// Feeds the row to a report the way upstream's SQL `get_report` does.
    /// Returns false (and counts the row as skipped) when it can't be used.
    pub(crate) fn append_to_report(&self, builder: &mut ReportBuilder) -> bool {
        let (Some(trace_id), Some(parent_id), Some(name), Some(timestamp), Ok(data)) = (
            &self.trace_id,
            &self.parent_id,
            &self.name,
            &self.timestamp,
            self.data_object(),
        ) else {
            builder.count_malformed();
            return false;
        };
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        builder.append(Event {
            trace_id: trace_id.clone(),
            parent_id: parent_id.clone(),
            name: name.clone(),
            project: text(&self.project),
            service: text(&self.service),
            host: text(&self.host),
            timestamp: timestamp.clone(),
            raw_payload: Value::Object(data),
        })
    }
}

/// The report of upstream's SQL driver from the rows of one `base_id`, in
/// the order the database returned them.
#[allow(dead_code)] // Used by the `sqlite`, `postgres` and `mysql` features.
pub(crate) fn report_from_rows<I: IntoIterator<Item = Row>>(rows: I) -> Report {
    let mut builder = ReportBuilder::new();
    for row in rows {
        row.append_to_report(&mut builder);
    }
    builder.finish()
}

/// `list_traces` over rows in table order: the requested columns of the
/// first row of each `base_id` (upstream returns the columns it was asked
/// for among the table's; `data` comes back decoded).
#[allow(dead_code)] // Used by the `sqlite`, `postgres` and `mysql` features.
pub(crate) fn trace_entry(row: &Row, fields: &[&str]) -> Map<String, Value> {
    let fields: &[&str] = if fields.is_empty() {
        &["base_id", "timestamp"]
    } else {
        fields
    };
    let mut out = Map::new();
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    // Upstream iterates the row's columns in table order, keeping the
    // requested ones.
    for column in ["id"].into_iter().chain(COLUMNS) {
        if !fields.contains(&column) {
            continue;
        }
        let value = match column {
            "timestamp" => text(&row.timestamp),
            "base_id" => text(&row.base_id),
            "parent_id" => text(&row.parent_id),
            "trace_id" => text(&row.trace_id),
            "project" => text(&row.project),
            "host" => text(&row.host),
            "service" => text(&row.service),
            "name" => text(&row.name),
            "data" => row.data_object().map_or(Value::Null, Value::Object),
            _ => continue,
        };
        out.insert(column.into(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification() -> Notification {
        Notification {
            name: "db-start".into(),
            base_id: "b".into(),
            trace_id: "t".into(),
            parent_id: "pp".into(),
            timestamp: "2024-01-01T00:00:00.000001".into(),
            info: json!({"host": "x", "db": {"statement": "SELECT é"}})
                .as_object()
                .cloned(),
        }
    }

    #[test]
    fn row_bytes_match_upstream_sqlalchemy() {
        // What SQLAlchemyDriver.notify stored for the same payload with
        // project="p", service="s", host="hh" (checked against a real run).
        let identity = Identity {
            project: Some("p".into()),
            service: Some("s".into()),
            host: Some("hh".into()),
        };
        let row = Row::from_notification(&notification(), &identity);
        assert_eq!(
            row.values(),
            [
                Some("2024-01-01T00:00:00.000001"),
                Some("b"),
                Some("pp"),
                Some("t"),
                Some("p"),
                Some("hh"),
                Some("s"),
                Some("db-start"),
                Some(
                    r#""{\"info\": {\"host\": \"x\", \"db\": {\"statement\": \"SELECT \\u00e9\"}}}""#
                ),
            ]
        );
    }

    #[test]
    fn payload_round_trips_in_python_key_order() {
        let n = notification();
        let identity = Identity {
            project: Some("p".into()),
            service: None,
            host: Some("hh".into()),
        };
        let row = Row::from_notification(&n, &identity);
        let payload = row.to_payload().unwrap();
        assert_eq!(
            serde_json::to_string(&payload).unwrap(),
            serde_json::to_string(&n.to_value(Some("p"), None)).unwrap()
        );
    }

    #[test]
    fn single_encoded_data_is_accepted_and_garbage_is_rejected() {
        let mut row = Row::from_values(Default::default());
        row.data = Some(r#"{"info": {"a": 1}}"#.into());
        assert_eq!(
            row.data_object().unwrap(),
            json!({"info": {"a": 1}}).as_object().cloned().unwrap()
        );
        for bad in [
            None,
            Some("nope"),
            Some("[1]"),
            Some(r#""[1]""#),
            Some(r#""{""#),
        ] {
            row.data = bad.map(String::from);
            assert_eq!(row.data_object(), Err(RowError::BadData));
            assert!(row.to_payload().is_err());
        }
    }

    #[test]
    fn create_statements_per_dialect() {
        let sqlite = create_statements(Dialect::Sqlite);
        assert_eq!(sqlite.len(), 9);
        assert!(sqlite[1]
            .starts_with("CREATE INDEX IF NOT EXISTS ix_data_timestamp ON data (timestamp)"));
        let mysql = create_statements(Dialect::Mysql);
        assert_eq!(mysql.len(), 1);
        assert!(
            mysql[0].contains("AUTO_INCREMENT") && mysql[0].contains("INDEX ix_data_name (name)")
        );
    }

    #[test]
    fn trace_entries_keep_requested_columns() {
        let row = Row::from_notification(&notification(), &Identity::default());
        assert_eq!(
            Value::Object(trace_entry(&row, &[])),
            json!({"timestamp": "2024-01-01T00:00:00.000001", "base_id": "b"})
        );
        assert_eq!(
            Value::Object(trace_entry(&row, &["name", "project"])),
            json!({"project": null, "name": "db-start"})
        );
    }
}
