//! One call that sets a service up from its `[profiler]` options: Python's
//! `osprofiler.initializer.init_from_conf`.

use std::time::Duration;

use crate::config::ProfilerConfig;
use crate::notifier::{self, FlushGuard};

/// Sets up profiling for a service from `conf` (Python's `init_from_conf`):
///
/// - creates the driver for `connection_string` (the embedded store when
///   none is set) stamping `project`, `service` and `host` on every
///   notification, and installs it;
/// - enables the server middleware everywhere with `hmac_keys`
///   (`web::enable`);
/// - enables HTTP-client tracing when `trace_requests` is set, and SQL
///   tracing when `trace_sqlalchemy` is set.
///
/// Does nothing when `enabled` is false (upstream services make that check
/// before calling). A driver that cannot start is logged and leaves
/// profiling without storage; the service keeps running, as upstream.
///
/// Keep the returned guard alive in `main`: dropping it flushes pending
/// notifications (waiting at most 5 s).
pub fn init_from_conf(
    conf: &ProfilerConfig,
    project: &str,
    service: &str,
    host: Option<&str>,
) -> FlushGuard {
    let guard = FlushGuard::new(Duration::from_secs(5));
    if !conf.enabled {
        return guard;
    }
    if let Some(host) = host {
        notifier::set_host(host);
    }
    let connection_string = conf
        .connection_string
        .clone()
        .or_else(crate::drivers::default_connection_string);
    match connection_string {
        Some(cs) => match notifier::create(&cs, Some(project), Some(service), host, conf) {
            Ok(driver) => {
                log::info!("osprofiler is enabled with connection string: {}", crate::drivers::redact_secrets(&cs));
                notifier::set_shared(driver);
            }
            Err(error) => log::error!("Could not initialize driver ({error}), osprofiler is disabled"),
        },
        None => log::error!("osprofiler: no connection_string and no home directory for the default store; osprofiler is disabled"),
    }
    #[cfg(feature = "tower")]
    crate::web::enable(&conf.hmac_keys);
    #[cfg(feature = "http-client")]
    if conf.trace_requests {
        crate::http_client::enable();
    }
    #[cfg(feature = "sql")]
    crate::sql::configure(conf);
    guard
}
