//! Synchronous free functions keep their signatures.
#![deny(warnings)]

use std::fmt::Debug;

use osprofiler::trace;

struct NoDebug;

#[trace("rpc")]
fn plain() {}

#[trace("rpc", hide_args = false, hide_result = true, info = serde_json::json!({"k": "v"}))]
pub fn all_options(a: u8, b: &str) -> usize {
    a as usize + b.len()
}

#[trace("rpc", hide_result = false)]
pub(crate) fn shows(x: u8) -> Option<u8> {
    if x == 0 {
        return None;
    }
    x.checked_add(1)
}

#[trace("rpc")]
fn patterns(_: u8, (a, b): (u8, u8), NoDebug: NoDebug, mut c: Vec<u8>) -> u8 {
    c.push(a);
    c.len() as u8 + b
}

#[trace("rpc")]
#[inline]
#[must_use]
fn attributed(x: u8) -> u8 {
    x
}

#[trace("rpc")]
fn borrows<'a>(items: &'a [String], i: usize) -> Option<&'a str> {
    items.get(i).map(String::as_str)
}

#[trace("rpc")]
fn errors(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.parse()?;
    Ok(n)
}

#[trace("rpc")]
fn boxed_error(text: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Ok(text.parse::<u32>()?)
}

#[trace("rpc", hide_result = false)]
fn impl_in_result(items: &[u8]) -> Result<impl Iterator<Item = &u8> + Debug, String> {
    if items.is_empty() {
        return Err("empty".to_owned());
    }
    Ok(items.iter())
}

#[trace("rpc")]
fn impl_return(n: u8) -> impl Iterator<Item = u8> {
    0..n
}

#[trace("rpc")]
fn impl_arg(f: impl Fn(u8) -> u8, d: impl Debug) -> u8 {
    let _ = d;
    f(1)
}

/// # Safety
/// Nothing to uphold; only checks that `unsafe fn` compiles.
#[trace("rpc")]
unsafe fn unsafe_fn(p: *const u8) -> u8 {
    *p
}

#[trace("rpc")]
fn never(fail: bool) -> u8 {
    if fail {
        panic!("no");
    }
    1
}

mod custom {
    /// A type that is merely named `Result`: never treated as an error.
    #[derive(Debug)]
    pub enum Result {
        Good,
    }

    #[osprofiler::trace("rpc")]
    pub fn custom_result() -> Result {
        Result::Good
    }
}

const NAME: &str = "named";

#[trace(NAME)]
fn const_name() {}

#[trace(String::from("dynamic"))]
fn dynamic_name() {}

fn main() {
    osprofiler::profiler::init("SECRET_KEY", None, None);
    plain();
    assert_eq!(all_options(1, "ab"), 3);
    assert_eq!(shows(1), Some(2));
    assert_eq!(patterns(0, (1, 2), NoDebug, vec![]), 3);
    assert_eq!(attributed(4), 4);
    let items = vec!["a".to_owned()];
    assert_eq!(borrows(&items, 0), Some("a"));
    assert!(errors("x").is_err());
    assert_eq!(boxed_error("3").unwrap(), 3);
    assert_eq!(impl_in_result(&[1, 2]).unwrap().count(), 2);
    assert_eq!(impl_return(3).sum::<u8>(), 3);
    assert_eq!(impl_arg(|x| x + 1, "d"), 2);
    assert_eq!(unsafe { unsafe_fn(&7) }, 7);
    assert_eq!(never(false), 1);
    assert!(matches!(custom::custom_result(), custom::Result::Good));
    const_name();
    dynamic_name();
    osprofiler::profiler::clean();
}
