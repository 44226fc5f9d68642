//! The `[profiler]` options of an oslo.config INI file.

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
        }
    }
}
