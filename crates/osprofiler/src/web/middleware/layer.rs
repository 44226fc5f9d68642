use std::sync::Arc;

use tower_layer::Layer;

use super::{Settings, TraceService};
use crate::web::{split_keys, TraceparentPolicy};

/// Layer that continues traces from signed headers (Python's
/// `WsgiMiddleware`). Enabled by default; [`web::enable`](super::enable) /
/// [`web::disable`](super::disable) override every layer at once.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    settings: Arc<Settings>,
}

impl TraceLayer {
    /// A layer trusting headers signed with one of `hmac_keys`
    /// (comma-separated, as in the `[profiler] hmac_keys` option).
    pub fn new(hmac_keys: &str) -> Self {
        TraceLayer {
            settings: Arc::new(Settings {
                enabled: true,
                hmac_keys: split_keys(hmac_keys),
                traceparent: TraceparentPolicy::Ignore,
            }),
        }
    }

    /// Sets whether this layer traces at all (the `enabled` option).
    pub fn enabled(self, enabled: bool) -> Self {
        TraceLayer {
            settings: Arc::new(Settings {
                enabled,
                hmac_keys: self.settings.hmac_keys.clone(),
                traceparent: self.settings.traceparent,
            }),
        }
    }

    /// Sets which incoming W3C `traceparent` headers are used (default
    /// [`TraceparentPolicy::Ignore`]). The header is not signed, so read
    /// [`web::traceparent`](crate::web::traceparent) before turning this
    /// on.
    pub fn accept_traceparent(self, policy: TraceparentPolicy) -> Self {
        TraceLayer {
            settings: Arc::new(Settings {
                enabled: self.settings.enabled,
                hmac_keys: self.settings.hmac_keys.clone(),
                traceparent: policy,
            }),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService::new(inner, self.settings.clone())
    }
}
