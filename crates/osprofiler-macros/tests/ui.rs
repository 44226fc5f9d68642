//! Compile tests of `#[trace]` and `#[trace_impl]`: what must compile (and
//! run) and what must be rejected with a clear message.
//!
//! Regenerate the expected messages with `TRYBUILD=overwrite` and review
//! the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
