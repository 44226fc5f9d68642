//! Profiler context that follows a future across `.await`.
//!
//! The wrapper owns the task's context. Each poll puts it into the thread's
//! slot, polls the inner future, and takes it back out, so tasks sharing a
//! thread (or moving between threads) never see each other's stacks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::Profiler;
use crate::local::{self, Context};

pin_project! {
    /// A future running with its own profiler context. Made by
    /// [`FutureExt::in_profiler`], [`FutureExt::in_current_profiler`] or
    /// [`scope`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct WithProfiler<F> {
        #[pin]
        inner: Option<F>,
        context: Option<Context>,
    }

    impl<F> PinnedDrop for WithProfiler<F> {
        fn drop(this: Pin<&mut Self>) {
            // A cancelled future drops its guards here: let them stop their
            // elements in the right context.
            let mut this = this.project();
            if this.inner.is_some() {
                let outer = local::swap_context(this.context.take());
                this.inner.set(None);
                local::hand_over_pending();
                *this.context = local::swap_context(outer);
            }
        }
    }
}

impl<F: Future> Future for WithProfiler<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let outer = local::swap_context(this.context.take());
        let result = inner.poll(cx);
        if result.is_ready() {
            this.inner.set(None);
        }
        // Events of a task that now waits must not sit in this thread's
        // buffer until some other task fills it.
        local::hand_over_pending();
        *this.context = local::swap_context(outer);
        result
    }
}

/// Attaches profiler contexts to futures.
pub trait FutureExt: Future + Sized {
    /// Runs this future inside the trace of `profiler`: elements it starts
    /// become children of `profiler.id()`.
    fn in_profiler(self, profiler: &Profiler) -> WithProfiler<Self> {
        WithProfiler {
            inner: Some(self),
            context: Some(profiler.fork()),
        }
    }

    /// Runs this future inside the trace active where this is called, if
    /// any: what to use for a task spawned from traced code.
    fn in_current_profiler(self) -> WithProfiler<Self> {
        WithProfiler {
            inner: Some(self),
            context: local::with_context(Context::fork),
        }
    }
}

impl<F: Future> FutureExt for F {}

/// Runs `future` in a context of its own, starting with no profiler: an
/// [`init`](super::init) inside it (a request handler) stays with it.
pub fn scope<F: Future>(future: F) -> WithProfiler<F> {
    WithProfiler {
        inner: Some(future),
        context: None,
    }
}

/// `tokio::spawn` that keeps the current trace in the spawned task.
#[cfg(feature = "tokio")]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.in_current_profiler())
}
