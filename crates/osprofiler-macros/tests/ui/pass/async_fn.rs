//! `async fn`s stay `async fn`s, and their futures stay `Send` when the
//! body's is.
#![deny(warnings)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use osprofiler::trace;

#[trace("api")]
async fn plain(x: u8) -> u8 {
    ready().await;
    x
}

#[trace("api", hide_result = false)]
pub async fn fallible(text: &str) -> Result<u32, std::num::ParseIntError> {
    ready().await;
    let n: u32 = text.parse()?;
    if n == 0 {
        return Ok(1);
    }
    Ok(n)
}

#[trace("api", hide_args = true)]
async fn borrowing<'a>(items: &'a mut Vec<u8>, x: u8) -> Result<&'a mut u8, String> {
    items.push(x);
    ready().await;
    items.last_mut().ok_or_else(|| "empty".to_owned())
}

#[trace("api")]
async fn generic<T: Send + std::fmt::Debug>(value: T) -> T {
    ready().await;
    value
}

#[trace("api", hide_result = false)]
async fn opaque() -> impl std::fmt::Debug {
    1
}

struct Service {
    count: u32,
}

impl Service {
    #[trace("api")]
    async fn bump(&mut self) -> Result<u32, std::io::Error> {
        ready().await;
        self.count += 1;
        Ok(self.count)
    }
}

async fn ready() {}

fn assert_send<T: Send>(t: T) -> T {
    t
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn main() {
    osprofiler::profiler::init("SECRET_KEY", None, None);
    assert_eq!(block_on(assert_send(plain(1))), 1);
    assert_eq!(block_on(assert_send(fallible("5"))).unwrap(), 5);
    let mut items = Vec::new();
    *block_on(assert_send(borrowing(&mut items, 1))).unwrap() += 1;
    assert_eq!(items, [2]);
    assert_eq!(block_on(generic("x")), "x");
    let _ = block_on(opaque());
    let mut service = Service { count: 0 };
    assert_eq!(block_on(assert_send(service.bump())).unwrap(), 1);
    osprofiler::profiler::clean();
}
