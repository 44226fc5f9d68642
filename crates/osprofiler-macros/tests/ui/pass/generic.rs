//! Generic functions and impls, `where` clauses, lifetimes.
#![deny(warnings)]

use std::fmt::{Debug, Display};

use osprofiler::{trace, trace_impl};

#[trace("rpc", hide_result = false)]
fn generic<T, U: Clone>(t: T, u: &U) -> (T, U)
where
    T: Default,
{
    let _ = T::default();
    (t, u.clone())
}

#[trace("rpc")]
fn generic_error<E: Display>(e: E) -> Result<(), E> {
    Err(e)
}

#[trace("rpc")]
fn debug_error<E: Debug>(e: E) -> Result<(), E> {
    Err(e)
}

#[trace("rpc")]
fn any_error<E>(e: E) -> Result<(), E> {
    Err(e)
}

#[trace("rpc")]
fn const_generic<const N: usize>(items: [u8; N]) -> usize {
    items.len()
}

struct Stack<'a, T> {
    items: Vec<&'a T>,
}

#[trace_impl("rpc", hide_result = false)]
impl<'a, T> Stack<'a, T>
where
    T: PartialEq,
{
    pub fn push(&mut self, item: &'a T) -> &mut Self {
        self.items.push(item);
        self
    }

    pub fn top(&self) -> Option<&&'a T> {
        self.items.last()
    }

    pub fn find<Q>(&self, q: Q) -> Result<usize, String>
    where
        Q: Fn(&T) -> bool,
    {
        self.items
            .iter()
            .position(|t| q(t))
            .ok_or_else(|| "missing".to_owned())
    }

    pub fn into_items(self) -> Vec<&'a T> {
        self.items
    }
}

fn main() {
    osprofiler::profiler::init("SECRET_KEY", None, None);
    assert_eq!(generic(1u8, &"x"), (1, "x"));
    assert!(generic_error("e").is_err());
    assert!(debug_error(vec![1]).is_err());
    assert!(any_error(std::sync::Mutex::new(1)).is_err());
    assert_eq!(const_generic([1, 2, 3]), 3);
    let (a, b) = (1, 2);
    let mut stack = Stack { items: Vec::new() };
    stack.push(&a).push(&b);
    assert_eq!(stack.top(), Some(&&2));
    assert_eq!(stack.find(|t| *t == 1), Ok(0));
    assert_eq!(stack.into_items().len(), 2);
    osprofiler::profiler::clean();
}
