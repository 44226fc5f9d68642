use osprofiler::{trace, trace_impl};

#[trace]
fn bare() {}

#[trace(hide_args = true)]
fn options_only() {}

struct S;

#[trace_impl]
impl S {
    fn m(&self) {}
}

fn main() {
    bare();
    options_only();
    S.m();
}
