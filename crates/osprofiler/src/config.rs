//! The `[profiler]` options of an oslo.config INI file.
//!
//! [`ProfilerConfig::from_file`] reads the same file an OpenStack service
//! reads (`nova.conf`, ...), parsed as oslo.config does:
//!
//! - `[section]` headers; section names are case-insensitive except
//!   `DEFAULT`.
//! - `key = value` or `key: value` (the first of `=`/`:` splits); the value
//!   is trimmed and one pair of matching surrounding quotes removed.
//! - Lines starting with `#` or `;` are comments (not inline: `a = b # c`
//!   has the value `b # c`). Indented lines continue the previous value
//!   (joined with a newline); a blank line ends it.
//! - When an option appears twice, the last value wins. Unknown sections
//!   and options are ignored.
//! - Booleans: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, any case.
//!
//! ```
//! use osprofiler::config::ProfilerConfig;
//!
//! let conf = ProfilerConfig::from_ini_str(
//!     "[DEFAULT]\ntransport_url = rabbit://guest:guest@localhost:5672/\n\
//!      [profiler]\nenabled = True\nhmac_keys = k1,k2\nconnection_string = redis://127.0.0.1:6379\n",
//! )
//! .unwrap();
//! assert!(conf.enabled);
//! assert_eq!(conf.hmac_keys, "k1,k2");
//!
//! // From code:
//! let conf = ProfilerConfig::default().with_enabled(true).with_connection_string("sqlite:///tmp/t.db");
//! assert_eq!(conf.connection_string.as_deref(), Some("sqlite:///tmp/t.db"));
//! ```

use std::path::Path;

use crate::error::{Error, Result};

/// Options of the `[profiler]` section (and `[profiler_otlp]`), with
/// upstream's defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProfilerConfig {
    /// `enabled`: profile requests at all (default false).
    pub enabled: bool,
    /// `trace_sqlalchemy`: trace SQL statements (default false).
    pub trace_sqlalchemy: bool,
    /// `trace_requests`: trace outgoing HTTP requests (default false).
    pub trace_requests: bool,
    /// `hmac_keys`: comma-separated keys (default `SECRET_KEY`).
    pub hmac_keys: String,
    /// `connection_string`: where notifications go.
    pub connection_string: Option<String>,
    /// `es_doc_type` (default `notification`).
    pub es_doc_type: String,
    /// `es_scroll_time` (default `2m`).
    pub es_scroll_time: String,
    /// `es_scroll_size` (default 10000).
    pub es_scroll_size: u64,
    /// `socket_timeout` in seconds, for Redis Sentinel (default 0.1).
    pub socket_timeout: f64,
    /// `sentinel_service_name` (default `mymaster`).
    pub sentinel_service_name: String,
    /// `filter_error_trace`: index traces with errors (default false).
    pub filter_error_trace: bool,
    /// `trace_ttl_seconds` (not in upstream): when set, the Redis driver
    /// makes every trace it writes (and its error-index entry) expire this
    /// many seconds after its last write, via `EXPIRE` in the same round
    /// trip. Default `None`: traces are kept until deleted, as upstream.
    pub trace_ttl_seconds: Option<u64>,
    /// `[profiler_otlp] service_name_prefix`.
    pub service_name_prefix: Option<String>,
    /// `[DEFAULT] transport_url`, used by the `messaging://` driver.
    pub transport_url: Option<String>,
    /// `[DEFAULT] control_exchange`: the exchange the `messaging://` driver
    /// publishes to (default `openstack`; services change it, e.g. nova
    /// uses `nova`).
    pub control_exchange: String,
    /// How long the `messaging://` reader waits for more notifications of
    /// a trace before it stops (the CLI's `--idle-timeout`, default 1 s;
    /// not an INI option upstream).
    pub idle_timeout_seconds: u64,
}

impl Default for ProfilerConfig {
    fn default() -> Self {
        ProfilerConfig {
            enabled: false,
            trace_sqlalchemy: false,
            trace_requests: false,
            hmac_keys: "SECRET_KEY".into(),
            connection_string: None,
            es_doc_type: "notification".into(),
            es_scroll_time: "2m".into(),
            es_scroll_size: 10_000,
            socket_timeout: 0.1,
            sentinel_service_name: "mymaster".into(),
            filter_error_trace: false,
            trace_ttl_seconds: None,
            service_name_prefix: None,
            transport_url: None,
            control_exchange: "openstack".into(),
            idle_timeout_seconds: 1,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($field:ident: $ty:ty) => $value:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, $field: $ty) -> ProfilerConfig {
                self.$field = $value;
                self
            }
        )*
    };
}

impl ProfilerConfig {
    /// Reads the options from an oslo.config INI file. Errors name the file,
    /// the line and the option.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ProfilerConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        ProfilerConfig::parse(&text, &path.display().to_string())
    }

    /// Reads the options from the text of an oslo.config INI file.
    pub fn from_ini_str(text: &str) -> Result<ProfilerConfig> {
        ProfilerConfig::parse(text, "<string>")
    }

    fn parse(text: &str, origin: &str) -> Result<ProfilerConfig> {
        let mut conf = ProfilerConfig::default();
        for entry in parse_ini(text, origin)? {
            conf.apply(&entry, origin)?;
        }
        Ok(conf)
    }

    fn apply(&mut self, e: &Entry<'_>, origin: &str) -> Result<()> {
        let bad = |what: &str| {
            let hint = match what {
                "boolean" => " (expected true/false, yes/no, on/off or 1/0)",
                "timeout" => " (expected seconds, 0 or more)",
                _ => "",
            };
            Error::Config(format!(
                "{origin}:{}: [{}] {}: invalid {what} {:?}{hint}",
                e.line, e.section, e.key, e.value
            ))
        };
        let boolean = || parse_bool(&e.value).ok_or_else(|| bad("boolean"));
        match (e.section.as_str(), e.key) {
            ("profiler", "enabled" | "profiler_enabled") => self.enabled = boolean()?,
            ("profiler", "trace_sqlalchemy") => self.trace_sqlalchemy = boolean()?,
            ("profiler", "trace_requests") => self.trace_requests = boolean()?,
            ("profiler", "filter_error_trace") => self.filter_error_trace = boolean()?,
            ("profiler", "hmac_keys") => self.hmac_keys = e.value.clone(),
            ("profiler", "connection_string") => self.connection_string = Some(e.value.clone()),
            ("profiler", "es_doc_type") => self.es_doc_type = e.value.clone(),
            ("profiler", "es_scroll_time") => self.es_scroll_time = e.value.clone(),
            ("profiler", "sentinel_service_name") => self.sentinel_service_name = e.value.clone(),
            // oslo reads an empty number as "unset": keep the default.
            ("profiler", "es_scroll_size") if !e.value.trim().is_empty() => {
                self.es_scroll_size = e.value.trim().parse().map_err(|_| bad("integer"))?;
            }
            ("profiler", "socket_timeout") if !e.value.trim().is_empty() => {
                let v: f64 = e.value.trim().parse().map_err(|_| bad("number"))?;
                if !v.is_finite() || v < 0.0 {
                    return Err(bad("timeout"));
                }
                self.socket_timeout = v;
            }
            ("profiler", "trace_ttl_seconds") => {
                self.trace_ttl_seconds = match e.value.trim() {
                    "" => None,
                    v => Some(v.parse().map_err(|_| bad("integer"))?),
                };
            }
            ("profiler_otlp", "service_name_prefix") => {
                self.service_name_prefix = Some(e.value.clone())
            }
            ("DEFAULT", "transport_url") => self.transport_url = Some(e.value.clone()),
            ("DEFAULT", "control_exchange") => self.control_exchange = e.value.clone(),
            _ => {}
        }
        Ok(())
    }

    setters! {
        /// Sets `enabled`.
        with_enabled(enabled: bool) => enabled;
        /// Sets `trace_sqlalchemy`.
        with_trace_sqlalchemy(trace_sqlalchemy: bool) => trace_sqlalchemy;
        /// Sets `trace_requests`.
        with_trace_requests(trace_requests: bool) => trace_requests;
        /// Sets `hmac_keys` (comma-separated).
        with_hmac_keys(hmac_keys: impl Into<String>) => hmac_keys.into();
        /// Sets `connection_string`.
        with_connection_string(connection_string: impl Into<String>) => Some(connection_string.into());
        /// Sets `es_doc_type`.
        with_es_doc_type(es_doc_type: impl Into<String>) => es_doc_type.into();
        /// Sets `es_scroll_time`.
        with_es_scroll_time(es_scroll_time: impl Into<String>) => es_scroll_time.into();
        /// Sets `es_scroll_size`.
        with_es_scroll_size(es_scroll_size: u64) => es_scroll_size;
        /// Sets `socket_timeout` in seconds.
        with_socket_timeout(socket_timeout: f64) => socket_timeout;
        /// Sets `sentinel_service_name`.
        with_sentinel_service_name(sentinel_service_name: impl Into<String>) => sentinel_service_name.into();
        /// Sets `filter_error_trace`.
        with_filter_error_trace(filter_error_trace: bool) => filter_error_trace;
        /// Sets `trace_ttl_seconds`.
        with_trace_ttl_seconds(trace_ttl_seconds: Option<u64>) => trace_ttl_seconds;
        /// Sets `[profiler_otlp] service_name_prefix`.
        with_service_name_prefix(service_name_prefix: impl Into<String>) => Some(service_name_prefix.into());
        /// Sets `[DEFAULT] transport_url`.
        with_transport_url(transport_url: impl Into<String>) => Some(transport_url.into());
        /// Sets `[DEFAULT] control_exchange`.
        with_control_exchange(control_exchange: impl Into<String>) => control_exchange.into();
    }
}

/// oslo.config's `Boolean` type.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// One complete assignment of the file.
#[derive(Debug)]
struct Entry<'a> {
    /// Normalized section name (lowercase, except `DEFAULT`).
    section: String,
    key: &'a str,
    value: String,
    /// 1-based line of the key.
    line: usize,
}

/// A broken line as a parse error shows it. The line may be a mistyped
/// `hmac_keys` or connection string, and errors end up in logs: URL
/// passwords are hidden, and a line that names a key, password or secret
/// shows its first word only.
fn shown_line(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    if ["key", "pass", "secret", "token"]
        .iter()
        .any(|word| lower.contains(word))
    {
        let line = line.trim_start();
        let end = line
            .find(|c: char| c == ':' || c == '=' || c.is_whitespace())
            .unwrap_or(line.len());
        return format!("{} ...", &line[..end]);
    }
    crate::drivers::redact_secrets(line)
}

/// oslo.config's `iniparser.BaseParser` with its `ConfigParser` rules.
fn parse_ini<'a>(text: &'a str, origin: &str) -> Result<Vec<Entry<'a>>> {
    let error = |line: usize, what: &str, text: &str| {
        Error::Config(format!("{origin}:{line}: {what}: {:?}", shown_line(text)))
    };
    let mut out: Vec<Entry<'a>> = Vec::new();
    let mut section: Option<String> = None;
    // The assignment being read, which continuation lines extend.
    let mut open = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            open = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some(entry) if open => {
                    entry.value.push('\n');
                    entry.value.push_str(line.trim_start());
                }
                _ => return Err(error(number, "unexpected continuation line", line)),
            }
            continue;
        }
        open = false;
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(error(number, "invalid section (must end with ])", line));
            };
            if name.is_empty() {
                return Err(error(number, "empty section name", line));
            }
            section = Some(if name == "DEFAULT" {
                name.to_owned()
            } else {
                name.to_lowercase()
            });
            continue;
        }
        if line.starts_with(['#', ';']) {
            continue;
        }
        let (colon, equal) = (line.find(':'), line.find('='));
        let split = match (colon, equal) {
            (None, None) => return Err(error(number, "no ':' or '=' found in assignment", line)),
            (Some(c), Some(e)) => c.min(e),
            (Some(at), None) | (None, Some(at)) => at,
        };
        let key = line[..split].trim();
        if key.is_empty() {
            return Err(error(number, "key cannot be empty", line));
        }
        let Some(section) = &section else {
            return Err(error(
                number,
                "section must be started before assignment",
                line,
            ));
        };
        let mut value = line[split + 1..].trim();
        if value.len() >= 2
            && (value.starts_with('"') || value.starts_with('\''))
            && value.ends_with(&value[..1])
        {
            value = &value[1..value.len() - 1];
        }
        out.push(Entry {
            section: section.clone(),
            key,
            value: value.to_owned(),
            line: number,
        });
        open = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_option() {
        let conf = ProfilerConfig::from_ini_str(
            "# nova.conf\n\
             [DEFAULT]\n\
             transport_url = rabbit://u:p@h:5672/\n\
             control_exchange = nova\n\
             debug = true\n\
             \n\
             [Profiler]\n\
             enabled = YES\n\
             trace_sqlalchemy: on\n\
             trace_requests = 1\n\
             hmac_keys = \"k1, k2\"\n\
             connection_string = redis://:pw@127.0.0.1:6379/0\n\
             es_doc_type = doc\n\
             es_scroll_time = 5m\n\
             es_scroll_size = 42\n\
             socket_timeout = 2.5\n\
             sentinel_service_name = master2\n\
             filter_error_trace = True\n\
             trace_ttl_seconds = 3600\n\
             unknown_option = whatever\n\
             ; comment\n\
             [profiler_otlp]\n\
             service_name_prefix = 'region1'\n\
             [other]\n\
             enabled = not-a-bool\n",
        )
        .unwrap();
        let want = ProfilerConfig::default()
            .with_enabled(true)
            .with_trace_sqlalchemy(true)
            .with_trace_requests(true)
            .with_hmac_keys("k1, k2")
            .with_connection_string("redis://:pw@127.0.0.1:6379/0")
            .with_es_doc_type("doc")
            .with_es_scroll_time("5m")
            .with_es_scroll_size(42)
            .with_socket_timeout(2.5)
            .with_sentinel_service_name("master2")
            .with_filter_error_trace(true)
            .with_trace_ttl_seconds(Some(3600))
            .with_service_name_prefix("region1")
            .with_transport_url("rabbit://u:p@h:5672/")
            .with_control_exchange("nova");
        assert_eq!(conf, want);
    }

    #[test]
    fn defaults_deprecated_name_last_value_and_continuations() {
        assert_eq!(
            ProfilerConfig::from_ini_str("").unwrap(),
            ProfilerConfig::default()
        );
        let conf = ProfilerConfig::from_ini_str(
            "[profiler]\nprofiler_enabled = true\nhmac_keys = a\nhmac_keys = b # not a comment\n\
             connection_string = x\n   continued\n\tagain\n\nes_scroll_size =\n",
        )
        .unwrap();
        assert!(conf.enabled);
        assert_eq!(conf.hmac_keys, "b # not a comment");
        assert_eq!(
            conf.connection_string.as_deref(),
            Some("x\ncontinued\nagain")
        );
        assert_eq!(conf.es_scroll_size, 10_000);
        for (text, on) in [
            ("TRUE", true),
            ("Off", false),
            ("0", false),
            ("yes", true),
            ("No", false),
        ] {
            let conf =
                ProfilerConfig::from_ini_str(&format!("[profiler]\nfilter_error_trace={text}"))
                    .unwrap();
            assert_eq!(conf.filter_error_trace, on, "{text}");
        }
    }

    #[test]
    fn bad_values_and_syntax_name_the_line() {
        let cases = [
            (
                "[profiler]\n\nenabled = maybe\n",
                "<string>:3: [profiler] enabled: invalid boolean \"maybe\"",
            ),
            (
                "[profiler]\nes_scroll_size = ten\n",
                "<string>:2: [profiler] es_scroll_size: invalid integer \"ten\"",
            ),
            (
                "[profiler]\nsocket_timeout = -1\n",
                "<string>:2: [profiler] socket_timeout: invalid timeout \"-1\"",
            ),
            (
                "enabled = true\n",
                "<string>:1: section must be started before assignment",
            ),
            (
                "[profiler\n",
                "<string>:1: invalid section (must end with ])",
            ),
            ("[]\n", "<string>:1: empty section name"),
            (
                "[profiler]\njust words\n",
                "<string>:2: no ':' or '=' found in assignment",
            ),
            ("[profiler]\n= x\n", "<string>:2: key cannot be empty"),
            ("  indented\n", "<string>:1: unexpected continuation line"),
        ];
        for (text, want) in cases {
            let err = ProfilerConfig::from_ini_str(text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("configuration: {want}")),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn from_file_names_the_file() {
        let dir = std::env::temp_dir().join(format!("osprofiler-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nova.conf");
        std::fs::write(&path, "[profiler]\nenabled = true\ntrace_requests = sure\n").unwrap();
        let err = ProfilerConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}:3: [profiler] trace_requests", path.display())),
            "{err}"
        );
        std::fs::write(&path, "[profiler]\nenabled = true\n").unwrap();
        assert!(ProfilerConfig::from_file(&path).unwrap().enabled);
        assert!(ProfilerConfig::from_file(dir.join("missing.conf")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
