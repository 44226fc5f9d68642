use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::local::{self, Context};
use crate::profiler::error_info;

pin_project! {
    /// Response future of [`TraceService`](super::TraceService).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // The request's trace: `None` for untraced requests, an empty slot
        // once the `wsgi` element is stopped. Boxed: every move of this
        // future copies it, and an untraced request's future is moved a
        // few times on its way to the executor.
        context: Option<Box<Option<Context>>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before completion (client went away): close the
            // element so the trace stays well formed.
            let Some(slot) = this.project().context.as_deref_mut() else {
                return;
            };
            if let Some(context) = slot.take() {
                finish(context, Some(error_info("Cancelled", "request dropped before a response was ready")));
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn untraced(inner: F) -> Self {
        ResponseFuture {
            inner,
            context: None,
        }
    }

    pub(crate) fn traced(inner: F, context: Option<Context>) -> Self {
        ResponseFuture {
            inner,
            context: Some(Box::new(context)),
        }
    }
}

/// Stops the `wsgi` element in its own context and lets the context go
/// (Python's `profiler.clean()` after the request).
fn finish(context: Context, stop_info: Option<serde_json::Value>) {
    let outer = local::swap_context(Some(context));
    local::stop(stop_info);
    local::hand_over_pending();
    local::swap_context(outer);
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(slot) = this.context.as_deref_mut() else {
            return this.inner.poll(cx);
        };
        let outer = local::swap_context(slot.take());
        let result = this.inner.poll(cx);
        let context = local::swap_context(outer);
        match &result {
            Poll::Pending => {
                // The thread may go idle now: what the handler recorded
                // goes out. (When ready, `finish` hands everything over
                // once, with the `wsgi` stop completing its start record.)
                local::hand_over_pending();
                *slot = context;
            }
            Poll::Ready(outcome) => {
                let stop_info = match outcome {
                    Ok(response) if response.status().is_server_error() => Some(error_info(
                        "HTTPServerError",
                        &response.status().to_string(),
                    )),
                    Ok(_) => None,
                    Err(error) => Some(error_info(std::any::type_name::<E>(), &error.to_string())),
                };
                match context {
                    Some(context) => finish(context, stop_info),
                    None => local::hand_over_pending(),
                }
            }
        }
        result
    }
}
