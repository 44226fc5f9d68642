use osprofiler::{trace, trace_impl};

#[trace_impl("rpc")]
fn not_an_impl() {}

trait Api {
    #[trace("rpc")]
    fn no_body(&self);
}

#[trace("rpc")]
const fn constant() -> u8 {
    1
}

struct S;

#[trace_impl("rpc", bogus = 1)]
impl S {
    #[no_trace]
    fn m(&self) {}
}

fn main() {
    not_an_impl();
    let _ = constant();
    S.m();
}
