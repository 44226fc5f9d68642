//! Storage backends ("drivers"), chosen by connection-string scheme.
//!
//! Each backend lives in its own module behind a cargo feature. The
//! collector thread calls [`Driver::notify_events`] with batches; the CLI and
//! reports call the read side.

mod discard;
mod memory;
#[cfg(feature = "messaging")]
pub mod messaging;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(any(feature = "redis", feature = "postgres", feature = "mysql"))]
mod reconnect;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod sql;
pub(crate) mod sql_layout;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

#[cfg(feature = "messaging")]
pub use self::messaging::MessagingDriver;
#[cfg(feature = "otlp")]
pub use self::otlp::OtlpDriver;
#[cfg(feature = "redis")]
pub use self::redis::RedisDriver;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use self::sql::SqlDriver;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteDriver;
pub use discard::DiscardDriver;
pub use memory::MemoryDriver;

use crate::config::ProfilerConfig;
use crate::error::{Error, Result};
use crate::notification::{Event, Notification};

/// A place notifications are written to and read back from.
///
/// `notify` runs on the collector thread, never on traced code; it may
/// block. An `Err` makes the collector keep the batch and retry it later,
/// with the same events first: a driver whose failed write may still have
/// been applied (a lost reply) should leave out of the retry what its store
/// already has, as the Redis driver does, or the batch is stored twice.
pub trait Driver: Send + Sync + fmt::Debug + 'static {
    /// Backend name (`redis`, `sqlite`, ...), for logs and errors.
    fn name(&self) -> &'static str;

    /// Stores a batch of notifications.
    fn notify(&self, batch: &[Notification]) -> Result<()>;

    /// Stores a batch as the collector hands it over. By default each
    /// event becomes a [`Notification`] for [`notify`](Driver::notify);
    /// a driver that writes text formats straight from the events instead
    /// and skips those allocations.
    fn notify_events(&self, batch: &[Event<'_>]) -> Result<()> {
        let batch: Vec<Notification> = batch.iter().map(Event::to_notification).collect();
        self.notify(&batch)
    }

    /// Every stored payload of one trace, as JSON objects, in no particular
    /// order.
    fn get_events(&self, base_id: &str) -> Result<Vec<Value>> {
        let _ = base_id;
        Err(Error::Unsupported {
            driver: self.name(),
            operation: "get_events",
        })
    }

    /// One entry per stored trace with the requested `fields` (default
    /// `base_id` and `timestamp`).
    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        let _ = fields;
        Err(Error::Unsupported {
            driver: self.name(),
            operation: "list_traces",
        })
    }

    /// `{"base_id", "timestamp"}` of every trace that has an error stop.
    fn list_error_traces(&self) -> Result<Vec<Map<String, Value>>> {
        Err(Error::Unsupported {
            driver: self.name(),
            operation: "list_error_traces",
        })
    }

    /// The call tree of one trace (Python's `get_report`): by default
    /// [`report::build`](crate::report::build) over
    /// [`get_events`](Driver::get_events).
    fn get_report(&self, base_id: &str) -> Result<crate::report::Report> {
        Ok(crate::report::build(self.get_events(base_id)?))
    }
}

impl<D: Driver + ?Sized> Driver for Arc<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn notify(&self, batch: &[Notification]) -> Result<()> {
        (**self).notify(batch)
    }
    fn notify_events(&self, batch: &[Event<'_>]) -> Result<()> {
        (**self).notify_events(batch)
    }
    fn get_events(&self, base_id: &str) -> Result<Vec<Value>> {
        (**self).get_events(base_id)
    }
    fn list_traces(&self, fields: &[&str]) -> Result<Vec<Map<String, Value>>> {
        (**self).list_traces(fields)
    }
    fn list_error_traces(&self) -> Result<Vec<Map<String, Value>>> {
        (**self).list_error_traces()
    }
    fn get_report(&self, base_id: &str) -> Result<crate::report::Report> {
        (**self).get_report(base_id)
    }
}

/// Creates the driver for a connection string (Python's
/// `drivers.base.get_driver`).
pub fn get_driver(
    connection_string: &str,
    project: Option<&str>,
    service: Option<&str>,
    host: Option<&str>,
    conf: &ProfilerConfig,
) -> Result<Arc<dyn Driver>> {
    let _ = (host, conf);
    let scheme = connection_string
        .split_once("://")
        .map_or(connection_string, |(s, _)| s);
    match scheme {
        "memory" => Ok(Arc::new(MemoryDriver::with_identity(project, service))),
        #[cfg(feature = "redis")]
        "redis" | "redissentinel" => Ok(Arc::new(RedisDriver::new(
            connection_string,
            project,
            service,
            conf,
        )?)),
        #[cfg(feature = "otlp")]
        "otlp" | "otlp+grpc" => Ok(Arc::new(OtlpDriver::new(
            connection_string,
            project,
            service,
            conf,
        )?)),
        #[cfg(feature = "postgres")]
        "postgresql" | "postgresql+psycopg2" => Ok(Arc::new(SqlDriver::new(
            connection_string,
            project,
            service,
            host,
            conf,
        )?)),
        #[cfg(feature = "mysql")]
        "mysql" | "mysql+pymysql" | "mysql+mysqldb" => Ok(Arc::new(SqlDriver::new(
            connection_string,
            project,
            service,
            host,
            conf,
        )?)),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(SqliteDriver::new(
            connection_string,
            project,
            service,
            host,
            conf,
        )?)),
        #[cfg(feature = "messaging")]
        "messaging" => Ok(Arc::new(MessagingDriver::new(
            connection_string,
            project,
            service,
            host,
            conf,
        )?)),
        _ => Err(Error::UnknownDriver(
            match connection_string.split_once("://") {
                Some(_) => redact_secrets(connection_string),
                // Not a URL (a typo like `redis:/:pw@h`): what follows the
                // scheme may hold a password that redaction cannot find.
                None => match connection_string.split_once(':') {
                    Some((scheme, _)) => format!("{scheme}:***"),
                    None => connection_string.to_string(),
                },
            },
        )),
    }
}

/// The connection string of the default store, a SQLite file:
/// `sqlite://$XDG_DATA_HOME/osprofiler/traces.db`, else
/// `sqlite://$HOME/.local/share/osprofiler/traces.db`. `None` when neither
/// variable is set (an `XDG_DATA_HOME` that is empty or relative is
/// ignored, as the XDG spec says).
pub fn default_connection_string() -> Option<String> {
    default_store_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

fn default_store_from(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<String> {
    let set =
        |v: Option<std::ffi::OsString>| v.filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let data_home = set(xdg_data_home)
        .filter(|p| p.is_absolute())
        .or_else(|| set(home).map(|home| home.join(".local").join("share")))?;
    let path = data_home.join("osprofiler").join("traces.db");
    Some(format!("sqlite://{}", path.display()))
}

/// Hides the password of every `scheme://user:password@host` in `text`.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(['/', ' ', '\'', '"', '?', '#'])
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden() {
        assert_eq!(
            redact_secrets("redis://:pw@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            redact_secrets("cannot reach mysql://root:s3cret@db/x and amqp://u@h"),
            "cannot reach mysql://root:***@db/x and amqp://u@h"
        );
        assert_eq!(redact_secrets("no url here"), "no url here");
    }

    #[test]
    fn default_store_follows_xdg() {
        let some = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            default_store_from(some("/x/data"), some("/home/u")).unwrap(),
            "sqlite:///x/data/osprofiler/traces.db"
        );
        assert_eq!(
            default_store_from(some("rel"), some("/home/u")).unwrap(),
            "sqlite:///home/u/.local/share/osprofiler/traces.db"
        );
        assert_eq!(
            default_store_from(some(""), some("/home/u")).unwrap(),
            "sqlite:///home/u/.local/share/osprofiler/traces.db"
        );
        assert_eq!(default_store_from(None, None), None);
    }

    #[test]
    fn unknown_scheme_names_the_connection_string() {
        let err =
            get_driver("foo://u:pw@x", None, None, None, &ProfilerConfig::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Driver not found for connection string: foo://u:***@x"
        );
    }
}
