//! Tracing of outgoing HTTP requests: Python's `osprofiler.requests` (the
//! `trace_requests` option), for Rust clients.
//!
//! Two levels:
//!
//! - [`inject_headers`] puts the signed [`X-Trace-Info`](crate::web::X_TRACE_INFO)
//!   / [`X-Trace-HMAC`](crate::web::X_TRACE_HMAC) headers of the current
//!   element on any client's [`http::HeaderMap`], so the called service
//!   continues the trace, and a W3C `traceparent` naming the same element
//!   for services instrumented with OpenTelemetry. It records nothing
//!   itself.
//! - With the `reqwest` feature, [`TracingMiddleware`] does what upstream's
//!   patched `HTTPAdapter.send` does for each request made while a profiler
//!   is active: it opens an element named after the URL scheme (`http` or
//!   `https`) with `{"requests": {"method", "query", "path", "hostname",
//!   "port", "scheme"}}`, sends the headers of *that* element (so the
//!   callee's `wsgi` element becomes its child), and stops it with
//!   `{"requests": {"status_code": N}}`.
//!
//! Where upstream leaves the element open when the request raises, the
//! middleware stops it with `{"etype", "message"}` (`etype` is the name of
//! the matching Python `requests` exception: `ConnectionError`, `Timeout`,
//! ...), and a request future dropped before it finished stops it with
//! `etype` `Cancelled`.
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn demo() -> Result<(), reqwest_middleware::Error> {
//! use osprofiler::http_client::TracingMiddleware;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TracingMiddleware::new())
//!     .build();
//! // Inside a trace this request is an `http` element of it:
//! let response = client.get("http://127.0.0.1:8774/servers").send().await?;
//! # Ok(()) }
//! ```
//!
//! The middleware's element lives in its own future, in a context forked
//! from the caller's: it follows the request across `.await` and never
//! touches the caller's stack, even when the request is cancelled.

use std::sync::atomic::{AtomicU8, Ordering};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::profiler;
use crate::web::{trace_headers, traceparent_for};

/// `x-trace-info`, as a header name.
pub const X_TRACE_INFO: HeaderName = HeaderName::from_static("x-trace-info");
/// `x-trace-hmac`, as a header name.
pub const X_TRACE_HMAC: HeaderName = HeaderName::from_static("x-trace-hmac");
/// `traceparent` (W3C Trace Context), as a header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets the signed trace headers of the current element on `headers`,
/// replacing any already there (Python's
/// `request.headers.update(web.get_trace_id_headers())`), and a W3C
/// `traceparent` naming the current element's span as the OTLP driver
/// exports it ([`traceparent_for`]), so a service instrumented with
/// OpenTelemetry joins the same trace.
///
/// Does nothing when no profiler is active; without a key only
/// `traceparent` is set. Returns whether the signed headers were set. Not
/// affected by [`enable`]/[`disable`], like upstream's
/// `get_trace_id_headers`.
pub fn inject_headers(headers: &mut HeaderMap) -> bool {
    let Some(p) = profiler::get() else {
        return false;
    };
    let (base_id, id) = (p.base_id(), p.id());
    if let Some(value) = traceparent_for(&base_id, &id).and_then(|v| HeaderValue::try_from(v).ok())
    {
        headers.insert(TRACEPARENT, value);
    }
    let Some((info, hmac)) = trace_headers(&base_id, &id, p.hmac_key()) else {
        return false;
    };
    // Base64 and hex are always valid header values; stay silent otherwise.
    match (HeaderValue::try_from(info), HeaderValue::try_from(hmac)) {
        (Ok(info), Ok(hmac)) => {
            headers.insert(X_TRACE_INFO, info);
            headers.insert(X_TRACE_HMAC, hmac);
            true
        }
        _ => false,
    }
}

const UNSET: u8 = 0;
const ENABLED: u8 = 1;
const DISABLED: u8 = 2;

static GLOBAL_STATE: AtomicU8 = AtomicU8::new(UNSET);

/// Turns request tracing on in every [`TracingMiddleware`], overriding its
/// own setting (Python's `osprofiler.requests.enable()`, called when the
/// `trace_requests` option is true).
pub fn enable() {
    GLOBAL_STATE.store(ENABLED, Ordering::Release);
}

/// Turns request tracing off in every [`TracingMiddleware`]: requests pass
/// through unrecorded and without trace headers.
pub fn disable() {
    GLOBAL_STATE.store(DISABLED, Ordering::Release);
}

/// Forgets [`enable`]/[`disable`]: each middleware's own setting decides.
pub fn reset_global() {
    GLOBAL_STATE.store(UNSET, Ordering::Release);
}

/// Whether a middleware whose own setting is `own` traces now.
fn is_enabled(own: bool) -> bool {
    match GLOBAL_STATE.load(Ordering::Acquire) {
        UNSET => own,
        state => state == ENABLED,
    }
}

/// Upstream's start info of a client element, from the parts of the URL.
///
/// `port` is the URL's port, else 80 for `http` and 443 for `https`, else
/// the empty string, exactly as upstream guesses it.
pub fn request_info(method: &str, url: &url::Url) -> Value {
    let scheme = url.scheme();
    let port = match (url.port(), scheme) {
        (Some(port), _) if port != 0 => Value::from(port),
        (_, "http") => Value::from(80),
        (_, "https") => Value::from(443),
        _ => Value::from(""),
    };
    let hostname = match url.host() {
        Some(url::Host::Domain(domain)) => Value::from(domain.to_lowercase()),
        Some(url::Host::Ipv4(addr)) => Value::from(addr.to_string()),
        // Python's `hostname` drops the brackets.
        Some(url::Host::Ipv6(addr)) => Value::from(addr.to_string()),
        None => Value::Null,
    };
    json!({"requests": {
        "method": method,
        "query": url.query().unwrap_or(""),
        "path": path_without_params(url.path()),
        "hostname": hostname,
        "port": port,
        "scheme": scheme,
    }})
}

/// Python's `urlparse` moves `;params` of the last path segment out of the
/// path; upstream records the path without them.
fn path_without_params(path: &str) -> &str {
    let last_segment = path.rfind('/').unwrap_or(0);
    match path[last_segment..].find(';') {
        Some(at) => &path[..last_segment + at],
        None => path,
    }
}

#[cfg(feature = "reqwest")]
mod middleware;
#[cfg(feature = "reqwest")]
pub use middleware::TracingMiddleware;

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, url: &str) -> Value {
        request_info(method, &url::Url::parse(url).unwrap())
    }

    #[test]
    fn request_info_matches_upstream() {
        assert_eq!(
            info("GET", "http://Example.COM/v2.1/servers?limit=1&x=%20"),
            json!({"requests": {"method": "GET", "query": "limit=1&x=%20",
                "path": "/v2.1/servers", "hostname": "example.com", "port": 80,
                "scheme": "http"}})
        );
        let https = info("POST", "https://[::1]:8443/a;b/c;d=1?");
        assert_eq!(
            https,
            json!({"requests": {"method": "POST", "query": "", "path": "/a;b/c",
                "hostname": "::1", "port": 8443, "scheme": "https"}})
        );
        assert_eq!(info("GET", "https://h:443/")["requests"]["port"], 443);
        assert_eq!(info("GET", "http://h:443/")["requests"]["port"], 443);
        assert_eq!(info("GET", "ftp://h/x")["requests"]["port"], "");
    }

    #[test]
    fn params_are_only_cut_from_the_last_segment() {
        assert_eq!(path_without_params("/a;x/b"), "/a;x/b");
        assert_eq!(path_without_params("/a/b;x"), "/a/b");
        assert_eq!(path_without_params("b;x"), "b");
        assert_eq!(path_without_params("/"), "/");
    }

    #[test]
    fn no_headers_without_a_profiler() {
        profiler::clean();
        let mut headers = HeaderMap::new();
        assert!(!inject_headers(&mut headers));
        assert!(headers.is_empty());
    }
}
