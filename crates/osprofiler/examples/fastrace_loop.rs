//! The `hot_loop` of fastrace, for comparing instruction counts under
//! callgrind: N local spans, under a new root every 10,000 (one root records
//! at most 10,240 local spans and skips the rest), with a reporter that
//! drops what it receives.
//! `cargo run --release --example fastrace_loop -- 1000000`

use std::hint::black_box;

struct DiscardReporter;

impl fastrace::collector::Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(spans);
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    fastrace::set_reporter(DiscardReporter, fastrace::collector::Config::default());
    let mut left = n;
    while left > 0 {
        let chunk = left.min(10_000);
        let root = fastrace::Span::root("outer", fastrace::collector::SpanContext::random());
        {
            let _parent = root.set_local_parent();
            for _ in 0..chunk {
                let _span = fastrace::local::LocalSpan::enter_with_local_parent(black_box("span"));
            }
        }
        drop(root);
        left -= chunk;
    }
    fastrace::flush();
}
