use std::sync::Arc;

use tower_layer::Layer;

use super::{shared_keys, Settings, TraceService};
use crate::web::TraceparentPolicy;

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
                hmac_keys: shared_keys(hmac_keys),
                traceparent: TraceparentPolicy::Ignore,
                service: 0,
            }),
        }
    }

    /// Sets whether this layer traces at all (the `enabled` option).
    pub fn enabled(self, enabled: bool) -> Self {
        self.with(|s| s.enabled = enabled)
    }

    /// Sets which incoming W3C `traceparent` headers are used (default
    /// [`TraceparentPolicy::Ignore`]). The header is not signed, so read
    /// [`web::traceparent`](crate::web::traceparent) before turning this
    /// on.
    pub fn accept_traceparent(self, policy: TraceparentPolicy) -> Self {
        self.with(|s| s.traceparent = policy)
    }

    /// Sends the traces of requests through this layer to the driver of
    /// `service` (a second service hosted by this process; see
    /// [`notifier::ServiceTag`](crate::notifier::ServiceTag)).
    pub fn service(self, service: crate::notifier::ServiceTag) -> Self {
        self.with(|s| s.service = service.0)
    }

    fn with(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::clone(&self.settings);
        change(&mut settings);
        TraceLayer {
            settings: Arc::new(settings),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService::new(inner, self.settings.clone())
    }
}
