//! Runtime helpers called by the code that `#[trace]` and `#[trace_impl]`
//! generate. Not a public API: anything here may change in any release.
//!
//! Everything that formats runs only after the generated code has checked
//! [`profiler::is_active`](crate::profiler::is_active), so a function traced
//! while no trace is active pays one thread-local check and nothing else.
//!
//! Formatting never panics: a `Debug` or `Display` implementation that
//! returns an error is replaced by the type name.
//!
//! "Autoref specialization" picks the best available formatting at the call
//! site: the generated code calls a method on a few levels of references to
//! a wrapper, and method resolution takes the impl that needs the fewest
//! auto-derefs among those whose bounds hold (`Debug` before the type name;
//! `Display`, then `Debug`, then the type name for errors).

use std::any::type_name;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::notifier::collector;
use crate::profiler::{error_info, Name, Trace};

/// Starts the element of a traced function. Called only when a profiler is
/// active.
///
/// `details` gives the function's name, its rendered arguments (`None`
/// with `hide_args`) and the user's `info`; it runs only when a driver
/// records the events, so nothing is formatted for the no-op notifier.
///
/// The start `info` is the user's `info` object with `function` set to
/// `{"name", "args", "kwargs"}` (Python: `info.copy()`, then
/// `info["function"] = {...}`). `args` and `kwargs` are left out when
/// `args` is `None`.
pub fn start<F>(name: impl Into<Name>, details: F) -> Trace
where
    F: FnOnce() -> (String, Option<String>, Option<Value>),
{
    let info = is_recording().then(|| {
        let (function, args, info) = details();
        start_info(function, args, info)
    });
    Trace::new(name, info)
}

/// The start info of a call site where it never changes (no arguments
/// shown, no `info = ...`): built on the first recorded call, then shared
/// by every later one.
#[derive(Debug)]
pub struct StaticInfo(OnceLock<u32>);

impl StaticInfo {
    /// An info not built yet.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> StaticInfo {
        StaticInfo(OnceLock::new())
    }
}

/// [`start`] for a call site with a [`StaticInfo`]. Once the site's info
/// is registered, this goes straight to the recording path: the generated
/// code has just checked that a profiler is active.
#[inline(always)]
pub fn start_static<F>(name: impl Into<Name>, site: &'static StaticInfo, details: F) -> Trace
where
    F: FnOnce() -> (String, Option<String>, Option<Value>),
{
    let site_info = match site.0.get() {
        Some(&index) => index,
        None => site.register(details),
    };
    Trace::with_site_info(name.into(), site_info)
}

/// The guard of a traced function called while no profiler is active.
#[inline(always)]
pub fn not_started() -> Trace {
    Trace::not_started()
}

impl StaticInfo {
    /// Builds and registers the site's info on its first recorded call;
    /// until a driver records, there is nothing to build (0: no info).
    #[cold]
    #[inline(never)]
    fn register<F>(&self, details: F) -> u32
    where
        F: FnOnce() -> (String, Option<String>, Option<Value>),
    {
        if !is_recording() {
            return 0;
        }
        *self.0.get_or_init(|| {
            let (function, args, info) = details();
            crate::local::register_site_info(start_info(function, args, info))
        })
    }
}

fn start_info(function: String, args: Option<String>, info: Option<Value>) -> Value {
    let mut start_info = match info {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut func = Map::new();
    func.insert("name".to_owned(), Value::String(function));
    if let Some(args) = args {
        func.insert("args".to_owned(), Value::String(args));
        // Rust has no keyword arguments; Python's `str({})`.
        func.insert("kwargs".to_owned(), Value::String("{}".to_owned()));
    }
    start_info.insert("function".to_owned(), Value::Object(func));
    Value::Object(start_info)
}

/// Whether a driver records events (so stop info is worth formatting).
#[inline]
pub fn is_recording() -> bool {
    collector::is_recording()
}

/// The guard of a traced function, if its stop info is worth formatting:
/// it opened an element and a driver records it.
#[inline]
pub fn recording(guard: &mut Trace) -> Option<&mut Trace> {
    (guard.is_recording() && is_recording()).then_some(guard)
}

/// Converts the `info = ...` expression of the attribute: a JSON object
/// (as a [`Value`] or a [`Map`]), or an `Option` of one. A [`Value`] that is
/// not an object adds nothing to the start `info`.
pub fn into_info<T: InfoObject>(info: T) -> Value {
    info.into_info()
}

/// What the `info = ...` option of `#[trace]` accepts.
#[diagnostic::on_unimplemented(
    message = "`info = ...` of #[trace] takes a JSON object, not `{Self}`",
    label = "expected a `serde_json::Value` object, e.g. `json!({{\"key\": \"value\"}})`"
)]
pub trait InfoObject {
    /// The info as JSON.
    fn into_info(self) -> Value;
}

impl InfoObject for Value {
    fn into_info(self) -> Value {
        self
    }
}

impl InfoObject for Map<String, Value> {
    fn into_info(self) -> Value {
        Value::Object(self)
    }
}

impl<T: InfoObject> InfoObject for Option<T> {
    fn into_info(self) -> Value {
        self.map_or(Value::Null, InfoObject::into_info)
    }
}

/// The traced function's name from the type name of an item declared in
/// its body: `my_crate::module::Type::method::__osprofiler_fn` becomes
/// `my_crate::module::Type::method`.
///
/// Closure segments (`{{closure}}`, present in `async fn` bodies) and
/// generic placeholders (`Type<_>`) are dropped.
pub fn function_name(marker_type_name: &str) -> String {
    let path = match marker_type_name.rfind("::") {
        Some(end) => &marker_type_name[..end],
        None => marker_type_name,
    };
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("::{{") {
            // Skip a compiler-made segment such as `::{{closure}}`.
            match rest.find("}}") {
                Some(end) => {
                    rest = &rest[end + 2..];
                    continue;
                }
                None => break,
            }
        }
        if c == '<' {
            if let Some(len) = placeholder_args_len(rest) {
                rest = &rest[len..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Length of a generic argument list made only of `_` (`<_>`, `<_, _>`) at
/// the start of `s`, if there is one.
fn placeholder_args_len(s: &str) -> Option<usize> {
    let end = s.find('>')?;
    let inner = &s[1..end];
    let only_placeholders = !inner.is_empty() && inner.split(',').all(|part| part.trim() == "_");
    only_placeholders.then_some(end + 1)
}

/// Python's `str(args)` for a tuple: `()`, `(1,)`, `(1, "x")`.
pub fn args_tuple(parts: &[String]) -> String {
    match parts {
        [] => "()".to_owned(),
        [one] => format!("({one},)"),
        many => format!("({})", many.join(", ")),
    }
}

/// How an argument whose pattern binds no single name (`_`, `(a, b)`)
/// appears in `args`.
pub fn unnamed_arg() -> String {
    "_".to_owned()
}

/// The stop `info` that shows a result (`hide_result = false`).
pub fn result_info(repr: String) -> Value {
    let mut func = Map::new();
    func.insert("result".to_owned(), Value::String(repr));
    let mut info = Map::new();
    info.insert("function".to_owned(), Value::Object(func));
    Value::Object(info)
}

/// Calls `body` once. Running the body of a traced function through this
/// (instead of calling the closure in place) makes the closure `FnOnce`, so
/// it may hand out borrows of what it captured, like the function could.
#[inline(always)]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Fixes the output type of an `async` block, so `?` inside the body of a
/// traced `async fn` converts errors into the declared return type.
#[inline(always)]
pub fn typed_future<R, F: Future<Output = R>>(future: F) -> F {
    future
}

fn type_placeholder<T: ?Sized>() -> String {
    format!("<{}>", type_name::<T>())
}

fn debug_of<T: fmt::Debug + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    match write!(out, "{value:?}") {
        Ok(()) => out,
        Err(_) => type_placeholder::<T>(),
    }
}

fn display_of<T: fmt::Display + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    match write!(out, "{value}") {
        Ok(()) => out,
        Err(_) => type_placeholder::<T>(),
    }
}

/// A value to render for `args` or `result`: call
/// `(&&Repr(&value)).osprofiler_repr()` with [`ReprDebug`] and
/// [`ReprOpaque`] in scope.
#[derive(Debug)]
pub struct Repr<'a, T: ?Sized>(pub &'a T);

/// `Debug` rendering (preferred).
pub trait ReprDebug {
    /// The value's `Debug` text.
    fn osprofiler_repr(&self) -> String;
}

impl<T: fmt::Debug + ?Sized> ReprDebug for &Repr<'_, T> {
    fn osprofiler_repr(&self) -> String {
        debug_of(self.0)
    }
}

/// Fallback for types without `Debug`: `<type name>`.
pub trait ReprOpaque {
    /// `<type name>`.
    fn osprofiler_repr(&self) -> String;
}

impl<T: ?Sized> ReprOpaque for Repr<'_, T> {
    fn osprofiler_repr(&self) -> String {
        type_placeholder::<T>()
    }
}

/// The returned value of a traced function whose return type looks like a
/// `Result`: call `(&&ResultProbe(&value)).osprofiler_err()` with
/// [`ProbeResult`] and [`ProbeOther`] in scope. A type merely named
/// `Result` that is not `std::result::Result` is never an error.
#[derive(Debug)]
pub struct ResultProbe<'a, T: ?Sized>(pub &'a T);

/// The error of a `std::result::Result`.
pub trait ProbeResult<'a> {
    /// The error type.
    type Error: ?Sized;
    /// The error, if the result is one.
    fn osprofiler_err(&self) -> Option<&'a Self::Error>;
}

impl<'a, T, E> ProbeResult<'a> for &ResultProbe<'a, Result<T, E>> {
    type Error = E;
    fn osprofiler_err(&self) -> Option<&'a E> {
        self.0.as_ref().err()
    }
}

/// Fallback for other types: never an error.
pub trait ProbeOther<'a> {
    /// Always `None`.
    fn osprofiler_err(&self) -> Option<&'a NotAnError>;
}

impl<'a, T: ?Sized> ProbeOther<'a> for ResultProbe<'a, T> {
    fn osprofiler_err(&self) -> Option<&'a NotAnError> {
        None
    }
}

/// The "error" type of values that are not a `std::result::Result`; never
/// constructed.
#[derive(Debug)]
pub enum NotAnError {}

impl fmt::Display for NotAnError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// An error returned by a traced function: call
/// `(&&&ErrorRepr(error)).osprofiler_error_info()` with [`ErrorDisplay`],
/// [`ErrorDebug`] and [`ErrorOpaque`] in scope. Gives Python's
/// `{"etype": ..., "message": ...}` with the error's type name.
#[derive(Debug)]
pub struct ErrorRepr<'a, E: ?Sized>(pub &'a E);

/// Message from `Display` (preferred), like Python's `str(exc)`.
pub trait ErrorDisplay {
    /// The stop `info` of the error.
    fn osprofiler_error_info(&self) -> Value;
}

impl<E: fmt::Display + ?Sized> ErrorDisplay for &&ErrorRepr<'_, E> {
    fn osprofiler_error_info(&self) -> Value {
        error_info(type_name::<E>(), &display_of(self.0))
    }
}

/// Message from `Debug`, for errors without `Display`.
pub trait ErrorDebug {
    /// The stop `info` of the error.
    fn osprofiler_error_info(&self) -> Value;
}

impl<E: fmt::Debug + ?Sized> ErrorDebug for &ErrorRepr<'_, E> {
    fn osprofiler_error_info(&self) -> Value {
        error_info(type_name::<E>(), &debug_of(self.0))
    }
}

/// Message `<type name>`, for errors with neither.
pub trait ErrorOpaque {
    /// The stop `info` of the error.
    fn osprofiler_error_info(&self) -> Value;
}

impl<E: ?Sized> ErrorOpaque for ErrorRepr<'_, E> {
    fn osprofiler_error_info(&self) -> Value {
        error_info(type_name::<E>(), &type_placeholder::<E>())
    }
}

#[cfg(test)]
// The extra borrows select the autoref-specialization level under test.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn function_names() {
        assert_eq!(function_name("a::b::f::__osprofiler_fn"), "a::b::f");
        assert_eq!(function_name("a::Foo<_>::m::__osprofiler_fn"), "a::Foo::m");
        assert_eq!(
            function_name("a::Foo<_, _>::m::{{closure}}::__osprofiler_fn"),
            "a::Foo::m"
        );
        assert_eq!(
            function_name("<a::Foo<_> as a::Tr<_>>::t::__osprofiler_fn"),
            "<a::Foo as a::Tr>::t"
        );
        assert_eq!(
            function_name("<a::Foo as a::Tr<u8>>::t::x"),
            "<a::Foo as a::Tr<u8>>::t"
        );
        assert_eq!(function_name("f"), "f");
        assert_eq!(function_name(""), "");
        assert_eq!(function_name("a::{{closure"), "a");
        assert_eq!(function_name("a<_::b"), "a<_");
    }

    #[test]
    fn tuples() {
        assert_eq!(args_tuple(&[]), "()");
        assert_eq!(args_tuple(&["1".into()]), "(1,)");
        assert_eq!(args_tuple(&["1".into(), "\"x\"".into()]), "(1, \"x\")");
    }

    #[test]
    fn start_info_shape() {
        let info = json!({"k": "v", "function": "overwritten", "z": 1});
        assert_eq!(
            start_info("m::f".into(), Some("(1,)".into()), Some(info)),
            json!({"k": "v", "function": {"name": "m::f", "args": "(1,)", "kwargs": "{}"}, "z": 1})
        );
        assert_eq!(
            start_info("m::f".into(), None, Some(json!([1]))),
            json!({"function": {"name": "m::f"}})
        );
    }

    struct Opaque;
    #[derive(Debug)]
    struct OnlyDebug;
    #[derive(Debug)]
    struct Both;
    impl fmt::Display for Both {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("shown")
        }
    }
    struct Broken;
    impl fmt::Debug for Broken {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            Err(fmt::Error)
        }
    }

    #[test]
    fn specialization_levels() {
        assert_eq!((&&Repr(&1u8)).osprofiler_repr(), "1");
        assert_eq!((&&Repr(&"x")).osprofiler_repr(), "\"x\"");
        assert!((&&Repr(&Opaque))
            .osprofiler_repr()
            .ends_with("tests::Opaque>"));
        assert!((&&Repr(&Broken))
            .osprofiler_repr()
            .ends_with("tests::Broken>"));

        let e = (&&&ErrorRepr(&Both)).osprofiler_error_info();
        assert_eq!(e["message"], "shown");
        assert!(e["etype"]
            .as_str()
            .is_some_and(|t| t.ends_with("tests::Both")));
        let e = (&&&ErrorRepr(&OnlyDebug)).osprofiler_error_info();
        assert_eq!(e["message"], "OnlyDebug");
        let e = (&&&ErrorRepr(&Opaque)).osprofiler_error_info();
        assert!(e["message"].as_str().is_some_and(|m| m.starts_with('<')));

        let ok: Result<u8, Both> = Ok(1);
        assert!((&&ResultProbe(&ok)).osprofiler_err().is_none());
        let err: Result<u8, Both> = Err(Both);
        assert!((&&ResultProbe(&err)).osprofiler_err().is_some());
        assert!((&&ResultProbe(&5u8)).osprofiler_err().is_none());
    }
}
