//! Attribute macros of [`osprofiler`](https://docs.rs/osprofiler): Python
//! OSProfiler's `@profiler.trace` and `@profiler.trace_cls` for Rust
//! functions and impl blocks.
//!
//! Use them through the `osprofiler` crate (`osprofiler::trace`,
//! `osprofiler::trace_impl`, feature `macros`, on by default); the code they
//! generate refers to `::osprofiler`.
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![forbid(unsafe_code)]

mod expand;
mod options;

use proc_macro::TokenStream;
use quote::ToTokens;
use syn::{ItemFn, ItemImpl};

use options::{Attr, Options};

/// Traces every call of a function (Python's `@profiler.trace`).
///
/// ```
/// use osprofiler::{drivers::MemoryDriver, notifier, profiler, trace};
/// use serde_json::json;
///
/// #[derive(Debug)]
/// struct Server {
///     name: String,
/// }
///
/// #[trace("rpc", hide_result = false, info = json!({"service": "compute"}))]
/// fn create_server(name: &str, vcpus: u32) -> Result<Server, String> {
///     if vcpus == 0 {
///         return Err("no vcpus".to_owned());
///     }
///     Ok(Server { name: name.to_owned() })
/// }
///
/// let store = MemoryDriver::new();
/// let guard = notifier::install(store.clone());
/// profiler::init("SECRET_KEY", None, None);
/// create_server("vm1", 2).unwrap();
/// profiler::clean();
/// drop(guard); // flushes
///
/// let payloads = store.payloads();
/// let start = &payloads[0]["info"];
/// assert_eq!(start["service"], "compute");
/// // The Rust path of the function: `my_crate::module::create_server`.
/// let name = start["function"]["name"].as_str().unwrap();
/// assert!(name.ends_with("::create_server"));
/// assert_eq!(start["function"]["args"], r#"("vm1", 2)"#);
/// assert_eq!(start["function"]["kwargs"], "{}");
/// assert_eq!(payloads[1]["info"]["function"]["result"], r#"Ok(Server { name: "vm1" })"#);
/// ```
///
/// The first argument names the trace point (`"rpc"`, `"db"`, ...; anything
/// `Into<osprofiler::profiler::Name>`). Each call, when a profiler is active
/// in the current context, emits:
///
/// - `<name>-start` with `info = {..info, "function": {"name": "<path>",
///   "args": "(1, \"x\")", "kwargs": "{}"}}`. `name` is the Rust path of the
///   function (`my_crate::module::Type::method`, or
///   `<my_crate::Type as my_crate::Trait>::method` in a trait impl). `args`
///   renders the arguments other than `self` like a Python tuple, each with
///   its `Debug` text (strings in double quotes, unlike Python's `repr`), or
///   `<type name>` when its type has no `Debug`, or `_` for a pattern that
///   binds no single name. `kwargs` is always `"{}"`.
/// - `<name>-stop` with no extra info; with `{"function": {"result":
///   "<Debug of the result>"}}` when `hide_result = false`; with `{"etype":
///   "<error type name>", "message": "<error text>"}` when the function
///   returns `Err` (return types whose last path segment is `Result`; the
///   text is the error's `Display`, else its `Debug`); with `etype`
///   `"panic"` when the body panics.
///
/// Options:
/// - `hide_args = true`: leave `args` and `kwargs` out (passwords, ...).
/// - `hide_result = false`: show the result (hidden by default, as in Python).
/// - `info = <expr>`: extra start info, an expression evaluating to a
///   `serde_json::Value` object (anything else adds nothing). Unlike Python,
///   it is evaluated at each traced call, and may use the arguments.
///
/// When no profiler is active the function pays one thread-local check:
/// nothing is formatted. An `async fn` starts its element when its body
/// starts (first poll) and stops it when the body completes, or when the
/// future is dropped unfinished.
#[proc_macro_attribute]
pub fn trace(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item);
    let result = Options::parse(Attr::Trace, args.into()).and_then(|options| {
        let mut function: ItemFn = syn::parse2(item2.clone()).map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[trace] applies to functions with a body; use #[trace_impl] on an impl block",
            )
        })?;
        function.block = Box::new(expand::traced_block(
            &options,
            &function.sig,
            &function.block,
        )?);
        Ok(function.into_token_stream())
    });
    finish(result, item2)
}

/// Traces the methods of an impl block (Python's `@profiler.trace_cls`).
///
/// ```
/// use osprofiler::{trace_impl, trace};
///
/// struct ComputeManager;
///
/// #[trace_impl("rpc", trace_private = false)]
/// impl ComputeManager {
///     fn new() -> Self { ComputeManager }         // skipped: no `self`
///     fn build(&self, id: u32) -> Result<(), String> { Ok(()) } // traced
///     fn _cache(&self) {}                         // skipped: private
///     #[no_trace]
///     fn hot(&self) {}                            // skipped: marked
///     #[trace("db", hide_args = true)]
///     fn save(&self, password: &str) {}           // traced as `db` only
/// }
/// # let m = ComputeManager::new();
/// # m.build(1).unwrap(); m._cache(); m.hot(); m.save("x");
/// ```
///
/// Takes the options of [`macro@trace`], applied to each selected method,
/// plus:
/// - `trace_private = true`: also trace methods whose name starts with `_`.
///   Names starting with `__` are never traced.
/// - `trace_static_methods = true`: also trace associated functions without
///   a `self` receiver (skipped by default, like Python's static and class
///   methods).
///
/// Methods that carry their own `#[trace(...)]` keep it and are not traced
/// twice; methods marked `#[no_trace]` are skipped (the marker is removed).
/// `const fn`s, associated consts and types are left alone. Works on
/// inherent and trait impls.
#[proc_macro_attribute]
pub fn trace_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item);
    let block: ItemImpl = match syn::parse2(item2.clone()) {
        Ok(block) => block,
        Err(e) => {
            let error = syn::Error::new(
                e.span(),
                "#[trace_impl] applies to impl blocks; use #[trace] on a function",
            );
            return finish(Err(error), item2);
        }
    };
    let mut traced = block.clone();
    let result = Options::parse(Attr::TraceImpl, args.into())
        .and_then(|options| expand::trace_impl(&options, &mut traced));
    match result {
        Ok(()) => traced.into_token_stream().into(),
        Err(error) => {
            // Keep the block as written, minus the markers only we know.
            let mut untraced = block;
            expand::remove_markers(&mut untraced);
            finish(Err(error), untraced.into_token_stream())
        }
    }
}

/// On error, the item is kept as written so the only error shown is ours.
fn finish(
    result: syn::Result<proc_macro2::TokenStream>,
    item: proc_macro2::TokenStream,
) -> TokenStream {
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}
