use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use tower_layer::Layer;

use super::{shared_keys, Settings, TraceService};
use crate::web::TraceparentPolicy;

/// Layer that continues traces from signed headers (Python's
/// `WsgiMiddleware`). Enabled by default; [`web::enable`](super::enable) /
/// [`web::disable`](super::disable) override every layer at once.
#[derive(Debug, Clone)]
pub struct TraceLayer {
    settings: SharedSettings,
}

impl TraceLayer {
    /// A layer trusting headers signed with one of `hmac_keys`
    /// (comma-separated, as in the `[profiler] hmac_keys` option).
    pub fn new(hmac_keys: &str) -> Self {
        TraceLayer {
            settings: SharedSettings::new(Settings {
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
            settings: SharedSettings::new(settings),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService::new(inner, self.settings.clone())
    }
}

/// A layer's settings as its services hold them. hyper and axum clone the
/// service for every request, so a clone must cost nothing: the first
/// [`KEPT_SETTINGS`] distinct configurations are kept for the life of the
/// process and cloned as a pointer (counting references to one shared
/// value cost 6-9 ns per request under wrk's load). Any beyond are
/// reference counted, so a process that keeps making new configurations
/// keeps only what it uses.
#[derive(Debug, Clone)]
pub(crate) enum SharedSettings {
    Kept(&'static Settings),
    Counted(Arc<Settings>),
}

/// Most distinct configurations kept for the life of the process.
const KEPT_SETTINGS: usize = 64;

static KEPT: Mutex<Vec<&'static Settings>> = Mutex::new(Vec::new());

impl SharedSettings {
    fn new(settings: Settings) -> SharedSettings {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(same) = kept.iter().find(|kept| ***kept == settings) {
            return SharedSettings::Kept(same);
        }
        if kept.len() >= KEPT_SETTINGS {
            return SharedSettings::Counted(Arc::new(settings));
        }
        let leaked: &'static Settings = Box::leak(Box::new(settings));
        kept.push(leaked);
        SharedSettings::Kept(leaked)
    }
}

impl Deref for SharedSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        match self {
            SharedSettings::Kept(settings) => settings,
            SharedSettings::Counted(settings) => settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(layer: &TraceLayer) -> Option<*const Settings> {
        match &layer.settings {
            SharedSettings::Kept(settings) => Some(*settings),
            SharedSettings::Counted(_) => None,
        }
    }

    #[test]
    fn one_configuration_is_kept_once_and_the_rest_are_counted() {
        let first = TraceLayer::new("kept-once-key");
        let again = TraceLayer::new("kept-once-key");
        assert!(kept(&first).is_some());
        assert_eq!(kept(&first), kept(&again), "the same configuration twice");
        let other = again.clone().enabled(false);
        assert_ne!(kept(&other), kept(&first));
        assert!(!other.settings.enabled && first.settings.enabled);

        // More configurations than are kept: the later ones are counted,
        // and each still has its own keys.
        let many: Vec<TraceLayer> = (0..KEPT_SETTINGS + 8)
            .map(|i| TraceLayer::new(&format!("many-key-{i}")))
            .collect();
        assert!(many.iter().any(|layer| kept(layer).is_none()));
        for (i, layer) in many.iter().enumerate() {
            assert_eq!(&*layer.settings.hmac_keys[0], format!("many-key-{i}"));
        }
        let total = KEPT.lock().unwrap_or_else(PoisonError::into_inner).len();
        assert_eq!(total, KEPT_SETTINGS);
    }
}
