//! Tower middleware that continues traces from signed request headers:
//! Python's `WsgiMiddleware`, for axum, hyper and tonic.
//!
//! A request with valid [`X-Trace-Info`](super::X_TRACE_INFO) /
//! [`X-Trace-HMAC`](super::X_TRACE_HMAC) headers runs inside a `wsgi`
//! element of that trace, with the profiler active in the handler and
//! following its future across `.await`. Any other request passes through
//! untouched: profiling never refuses a request.
//!
//! A W3C `traceparent` header is ignored unless
//! [`TraceLayer::accept_traceparent`] says otherwise; see
//! [`TraceparentPolicy`](crate::web::TraceparentPolicy) and, for why it is
//! opt-in, [`web::traceparent`](crate::web::traceparent).
//!
//! ```
//! use osprofiler::web::TraceLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let service = TraceLayer::new("SECRET_KEY").layer(service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! }));
//! let response = service.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod future;
mod layer;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};

use http::header::HeaderName;
use http::{Request, Response};
use tower_service::Service;

pub use future::ResponseFuture;
use layer::SharedSettings;
pub use layer::TraceLayer;

use super::signing::unpack_with;
use super::{otel_trace_id, TraceParent, TraceparentPolicy, TRACEPARENT};
use crate::local::{self, Context, Info};
use crate::notification::write_escaped;
use crate::profiler::Id;

const UNSET: u8 = 0;
const ENABLED: u8 = 1;
const DISABLED: u8 = 2;

static GLOBAL_STATE: AtomicU8 = AtomicU8::new(UNSET);
static GLOBAL_KEYS: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

// Looked up by `HeaderName`: a `&str` name is parsed and lowercased on
// every lookup, which cost more than the rest of an untraced request.
static TRACE_INFO: HeaderName = HeaderName::from_static("x-trace-info");
static TRACE_HMAC: HeaderName = HeaderName::from_static("x-trace-hmac");

/// The keys of a comma-separated list, shared by every request they
/// validate.
fn shared_keys(hmac_keys: &str) -> Vec<Arc<str>> {
    super::split_keys(hmac_keys)
        .into_iter()
        .map(Arc::from)
        .collect()
}

/// Turns the middleware on everywhere, overriding each layer's own
/// `enabled`; `hmac_keys` (comma-separated) replaces the layers' keys
/// when not empty (Python's `web.enable`).
pub fn enable(hmac_keys: &str) {
    if let Ok(mut keys) = GLOBAL_KEYS.write() {
        *keys = shared_keys(hmac_keys);
    }
    GLOBAL_STATE.store(ENABLED, Ordering::Release);
}

/// Turns the middleware off everywhere (Python's `web.disable`).
pub fn disable() {
    GLOBAL_STATE.store(DISABLED, Ordering::Release);
}

/// Forgets [`enable`]/[`disable`]: each layer's own settings decide again.
pub fn reset_global() {
    if let Ok(mut keys) = GLOBAL_KEYS.write() {
        keys.clear();
    }
    GLOBAL_STATE.store(UNSET, Ordering::Release);
}

/// Settings shared by the layer and its services.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) hmac_keys: Vec<Arc<str>>,
    pub(crate) traceparent: TraceparentPolicy,
    /// Tag of the service whose driver gets this layer's traces (0: the
    /// default driver).
    pub(crate) service: u16,
}

/// The service made by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
    settings: SharedSettings,
}

impl<S> TraceService<S> {
    pub(crate) fn new(inner: S, settings: SharedSettings) -> Self {
        TraceService { inner, settings }
    }

    /// The context a request continues, if its headers are trusted, and
    /// the `traceparent` to record in its `wsgi` info (opt-in policy).
    fn trusted_context<B>(&self, request: &Request<B>) -> Option<(Context, Option<String>)> {
        let enabled = match GLOBAL_STATE.load(Ordering::Acquire) {
            UNSET => self.settings.enabled,
            state => state == ENABLED,
        };
        if !enabled {
            return None;
        }
        let policy = self.settings.traceparent;
        // The common untraced request stops here, after one header lookup.
        let Some(info) = request.headers().get(&TRACE_INFO) else {
            return match policy {
                TraceparentPolicy::AlwaysOn => self.traceparent_context(request),
                _ => None,
            };
        };
        let hmac = request
            .headers()
            .get(&TRACE_HMAC)
            .and_then(|v| v.to_str().ok());
        let trace = info.to_str().ok().and_then(|info| {
            self.with_keys(|keys| {
                unpack_with(Some(info), hmac, keys, |ids| {
                    let base = match ids.base_id {
                        "" => Id::random(),
                        text => Id::from_text(text),
                    };
                    let parent = match ids.parent_id {
                        None | Some("") => base.clone(),
                        Some(text) => Id::from_text(text),
                    };
                    (base, parent, keys[ids.key].clone())
                })
            })
        });
        let Some((base, parent, key)) = trace else {
            return match policy {
                TraceparentPolicy::AlwaysOn => self.traceparent_context(request),
                _ => None,
            };
        };
        // A traceparent may only refine a trusted trace, never redirect it.
        let traceparent = match policy {
            TraceparentPolicy::Ignore => None,
            _ => traceparent(request)
                .filter(|tp| tp.trace_id == otel_trace_id(&base.to_string()))
                .map(|tp| tp.to_string()),
        };
        Some((Context::new(key, base, parent), traceparent))
    }

    /// A new trace continuing the request's `traceparent`
    /// ([`TraceparentPolicy::AlwaysOn`]): its trace id as `base_id`, its
    /// parent span as the parent element, the first key to sign further.
    fn traceparent_context<B>(&self, request: &Request<B>) -> Option<(Context, Option<String>)> {
        let tp = traceparent(request)?;
        let key = self.with_keys(|keys| keys.first().cloned().unwrap_or_else(|| Arc::from("")));
        let base = Id::from_text(&tp.base_id());
        let parent = Id::from_text(&tp.parent_element_id());
        Some((Context::new(key, base, parent), Some(tp.to_string())))
    }

    /// Runs `f` on the keys in force: the global ones when set, else the
    /// layer's.
    fn with_keys<R>(&self, f: impl FnOnce(&[Arc<str>]) -> R) -> R {
        let global_keys = GLOBAL_KEYS.read().ok().filter(|k| !k.is_empty());
        match &global_keys {
            Some(keys) => f(keys),
            None => f(&self.settings.hmac_keys),
        }
    }
}

/// The request's one valid `traceparent` (several are refused, as W3C
/// allows).
fn traceparent<B>(request: &Request<B>) -> Option<TraceParent> {
    let mut values = request.headers().get_all(TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    TraceParent::parse(value.to_str().ok()?)
}

/// Python's `request` info: path, query, method, scheme, in that order;
/// `traceparent` after them when given. Rendered as JSON text here, into
/// an info the collector gave back: as a `serde_json` value it took a
/// dozen allocations, all freed by the collector thread, whose frees
/// contend with this thread's allocations for the allocator's lock.
fn request_info<B>(request: &Request<B>, traceparent: Option<&str>) -> Arc<Info> {
    let uri = request.uri();
    let path = percent_decode(uri.path());
    let query = uri.query().unwrap_or("");
    Info::render(80 + path.len() + query.len(), |text| {
        let fields = [
            ("{\"request\":{\"path\":", &*path),
            (",\"query\":", query),
            (",\"method\":", request.method().as_str()),
            (",\"scheme\":", uri.scheme_str().unwrap_or("http")),
        ];
        for (prefix, value) in fields {
            text.extend_from_slice(prefix.as_bytes());
            write_info_string(text, value);
        }
        text.push(b'}');
        if let Some(tp) = traceparent {
            text.extend_from_slice(b",\"traceparent\":");
            write_info_string(text, tp);
        }
        text.push(b'}');
    })
}

/// A JSON string, cut to `max_info_bytes` like every info string.
fn write_info_string(out: &mut Vec<u8>, value: &str) {
    let (kept, cut) = crate::limits::truncated_str(value);
    out.push(b'"');
    write_escaped(out, kept);
    if cut {
        out.extend_from_slice(crate::limits::TRUNCATION_MARK.as_bytes());
    }
    out.push(b'"');
}

/// WSGI servers hand the application a URL-decoded path.
fn percent_decode(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some((mut context, traceparent)) = self.trusted_context(&request) else {
            return ResponseFuture::untraced(self.inner.call(request));
        };
        context.set_service(self.settings.service);
        let info = request_info(&request, traceparent.as_deref());
        // The handler may do work in `call` already: run it in the trace.
        let outer = local::swap_context(Some(context));
        local::start("wsgi".into(), Some(info));
        let inner = self.inner.call(request);
        let context = local::swap_context(outer);
        ResponseFuture::traced(inner, context)
    }
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, request_info, write_info_string, Info};

    #[test]
    fn request_info_keeps_pythons_key_order() {
        let request = http::Request::builder()
            .method("POST")
            .uri("https://h/a%20b?x=1")
            .body(())
            .unwrap();
        let text = |info: std::sync::Arc<Info>| match &*info {
            Info::Rendered(text) => text.to_string(),
            Info::Value(value) => panic!("not rendered: {value}"),
        };
        assert_eq!(
            text(request_info(&request, None)),
            r#"{"request":{"path":"/a b","query":"x=1","method":"POST","scheme":"https"}}"#
        );
        let request = http::Request::builder().uri("/").body(()).unwrap();
        assert_eq!(
            text(request_info(&request, Some("tp"))),
            r#"{"request":{"path":"/","query":"","method":"GET","scheme":"http"},"traceparent":"tp"}"#
        );
        // Escaped as serde_json escapes, and cut like every info string.
        let request = http::Request::builder()
            .uri("/%22q%22%5C%0A?a=%22")
            .body(())
            .unwrap();
        let rendered = text(request_info(&request, None));
        let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(parsed["request"]["path"], "/\"q\"\\\n");
        assert_eq!(rendered, serde_json::to_string(&parsed).unwrap());
        // A URI cannot exceed the default limit; the strings it gives are
        // cut by the same writer.
        let mut out = Vec::new();
        write_info_string(&mut out, &"é".repeat(40_000));
        let cut: String = serde_json::from_slice(&out).unwrap();
        let mark = crate::limits::TRUNCATION_MARK;
        assert!(cut.ends_with(mark), "{}", cut.len());
        assert!(cut.len() <= crate::limits::max_info_bytes() + mark.len());
    }

    #[test]
    fn paths_are_decoded_like_wsgi() {
        assert_eq!(percent_decode("/a%20b/%E2%9C%93"), "/a b/✓");
        assert_eq!(percent_decode("/100%"), "/100%");
        assert_eq!(percent_decode("/%zz"), "/%zz");
    }
}
