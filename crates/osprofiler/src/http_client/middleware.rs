//! The reqwest-middleware integration.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use serde_json::{json, Value};

use super::{inject_headers, is_enabled, request_info};
use crate::local::{self, Name};
use crate::profiler::{error_info, FutureExt as _, Trace};

/// A [`reqwest_middleware::Middleware`] that records each request made
/// inside a trace as an element named after its URL scheme, and sends the
/// headers that make the called service continue the trace under it.
///
/// Outside a trace (or when [`disable`](super::disable)d) requests pass
/// through untouched. Enabled by default: adding it to a client is the
/// opt-in; [`enable`](super::enable)/[`disable`](super::disable) override
/// every instance, like the `trace_requests` option.
#[derive(Debug, Clone)]
pub struct TracingMiddleware {
    enabled: bool,
}

impl Default for TracingMiddleware {
    fn default() -> Self {
        TracingMiddleware::new()
    }
}

impl TracingMiddleware {
    /// An enabled middleware.
    pub fn new() -> Self {
        TracingMiddleware { enabled: true }
    }

    /// Sets whether this middleware traces when no global
    /// [`enable`](super::enable)/[`disable`](super::disable) applies.
    pub fn enabled(self, enabled: bool) -> Self {
        TracingMiddleware { enabled }
    }
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !is_enabled(self.enabled) || !local::is_active() {
            return next.run(request, extensions).await;
        }
        let name: Name = match request.url().scheme() {
            "http" => "http".into(),
            "https" => "https".into(),
            other => other.to_string().into(),
        };
        let info = request_info(request.method().as_str(), request.url());
        // The element lives in this future's own context (a fork of the
        // caller's), so it follows the request across `.await` and a
        // cancelled request closes it without touching the caller's stack.
        async move {
            let mut trace = Trace::new(name, Some(info));
            trace.set_stop_info(error_info(
                "Cancelled",
                "request dropped before a response arrived",
            ));
            inject_headers(request.headers_mut());
            let result = next.run(request, extensions).await;
            trace.set_stop_info(match &result {
                Ok(response) => json!({"requests": {"status_code": response.status().as_u16()}}),
                Err(error) => failure_info(error),
            });
            result
        }
        .in_current_profiler()
        .await
    }
}

/// The stop info of a failed request; `etype` is the name of the Python
/// `requests` exception that stands for the same failure.
fn failure_info(error: &reqwest_middleware::Error) -> Value {
    let etype = match error {
        reqwest_middleware::Error::Middleware(_) => "MiddlewareError",
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "Timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "ConnectionError",
        reqwest_middleware::Error::Reqwest(e) if e.is_redirect() => "TooManyRedirects",
        reqwest_middleware::Error::Reqwest(e) if e.is_builder() => "InvalidURL",
        reqwest_middleware::Error::Reqwest(e) if e.is_decode() => "ContentDecodingError",
        reqwest_middleware::Error::Reqwest(_) => "RequestException",
    };
    error_info(etype, &error_chain(error))
}

/// The error and its sources, `: `-separated (reqwest's own text often
/// hides the cause, e.g. "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
