//! Code generation: the body of a traced function.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::{
    Attribute, Block, Expr, FnArg, ImplItem, ItemImpl, Pat, ReturnType, Signature, Stmt, Type,
};

use crate::options::Options;

/// Replaces the body of a function with the traced body. The signature
/// (and so visibility, generics, `where` clauses and attributes) stays.
pub(crate) fn traced_block(
    options: &Options,
    sig: &Signature,
    block: &Block,
) -> syn::Result<Block> {
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "a `const fn` cannot be traced: tracing runs code at run time",
        ));
    }
    let body = body_tokens(options, sig, block);
    Ok(Block {
        brace_token: block.brace_token,
        stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)],
    })
}

fn body_tokens(options: &Options, sig: &Signature, block: &Block) -> TokenStream {
    // Locals are hygienic, so they can't clash with the user's.
    let guard = syn::Ident::new("__osprofiler_guard", Span::mixed_site());
    let result = syn::Ident::new("__osprofiler_result", Span::mixed_site());
    let trace = syn::Ident::new("__osprofiler_trace", Span::mixed_site());
    let error = syn::Ident::new("__osprofiler_error", Span::mixed_site());

    let name = &options.name;
    let args = if options.hide_args {
        quote!(::core::option::Option::None)
    } else {
        let parts = sig.inputs.iter().filter_map(|arg| match arg {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => Some(arg_repr(&typed.pat)),
        });
        quote!(::core::option::Option::Some(
            ::osprofiler::__macro_support::args_tuple(&[#(#parts),*])
        ))
    };
    let info = match &options.info {
        Some(expr) => quote!(::core::option::Option::Some(
            ::osprofiler::__macro_support::into_info(#expr)
        )),
        None => quote!(::core::option::Option::None),
    };

    let details = quote! {
        || {
            #[allow(unused_imports)]
            use ::osprofiler::__macro_support::{ReprDebug as _, ReprOpaque as _};
            (
                ::osprofiler::__macro_support::function_name(
                    ::core::any::type_name_of_val(&__osprofiler_fn),
                ),
                #args,
                #info,
            )
        }
    };
    // Without arguments to show or a user info, the start info is the same
    // on every call: it is built once per call site.
    let shown_args = sig
        .inputs
        .iter()
        .filter(|arg| matches!(arg, FnArg::Typed(_)))
        .count();
    let start_call = if options.info.is_none() && (options.hide_args || shown_args == 0) {
        quote! {{
            static __OSPROFILER_INFO: ::osprofiler::__macro_support::StaticInfo =
                ::osprofiler::__macro_support::StaticInfo::new();
            ::osprofiler::__macro_support::start_static(#name, &__OSPROFILER_INFO, #details)
        }}
    } else {
        quote!(::osprofiler::__macro_support::start(#name, #details))
    };

    let returns_result = returns_result(&sig.output);
    let show_result = !options.hide_result;
    let inspects_result = returns_result || show_result;
    let mutability = inspects_result.then(|| quote!(mut));
    let start = quote! {
        // Its type name is the path of this function.
        fn __osprofiler_fn() {}
        // `_name` arguments are rendered too, like every other.
        #[allow(clippy::used_underscore_binding)]
        let #mutability #guard = if ::osprofiler::profiler::is_active() {
            #start_call
        } else {
            ::osprofiler::__macro_support::not_started()
        };
    };

    if !inspects_result {
        // Nothing to look at after the body: the guard's drop stops the
        // element on every exit (return, `?`, panic, cancellation).
        return quote! {
            #start
            #block
        };
    }

    // The body runs in a closure / async block so `return` and `?` inside
    // it hand us the value before the function returns it.
    let ret_ty = match &sig.output {
        ReturnType::Type(_, ty) if !contains_impl(ty) => Some(&**ty),
        _ => None,
    };
    let run = if sig.asyncness.is_some() {
        match ret_ty {
            Some(ty) => quote! {
                ::osprofiler::__macro_support::typed_future::<#ty, _>(async move #block).await
            },
            None => quote!(async move #block.await),
        }
    } else {
        match ret_ty {
            Some(ty) => quote! {
                ::osprofiler::__macro_support::call_once(move || -> #ty #block)
            },
            None => quote!(::osprofiler::__macro_support::call_once(move || #block)),
        }
    };

    let show = if show_result {
        quote! {
            #trace.set_stop_info(::osprofiler::__macro_support::result_info(
                (&&::osprofiler::__macro_support::Repr(&#result)).osprofiler_repr(),
            ));
        }
    } else {
        TokenStream::new()
    };
    let finish = if returns_result {
        quote! {
            match (&&::osprofiler::__macro_support::ResultProbe(&#result)).osprofiler_err() {
                ::core::option::Option::Some(#error) => #trace.set_stop_info(
                    (&&&::osprofiler::__macro_support::ErrorRepr(#error))
                        .osprofiler_error_info(),
                ),
                ::core::option::Option::None => { #show }
            }
        }
    } else {
        show
    };

    quote! {
        #start
        let #result = #run;
        if let ::core::option::Option::Some(#trace) =
            ::osprofiler::__macro_support::recording(&mut #guard)
        {
            #[allow(unused_imports)]
            use ::osprofiler::__macro_support::{
                ErrorDebug as _, ErrorDisplay as _, ErrorOpaque as _, ProbeOther as _,
                ProbeResult as _, ReprDebug as _, ReprOpaque as _,
            };
            #finish
        }
        #result
    }
}

/// How one argument appears in `args`: its `Debug` text, `<type name>` when
/// it has no `Debug`, `_` when the pattern binds no single name.
fn arg_repr(pat: &Pat) -> TokenStream {
    match pat {
        Pat::Ident(ident) => {
            let ident = &ident.ident;
            quote!((&&::osprofiler::__macro_support::Repr(&#ident)).osprofiler_repr())
        }
        _ => quote!(::osprofiler::__macro_support::unnamed_arg()),
    }
}

/// Whether the declared return type looks like a `Result` (its last path
/// segment is `Result`: `Result<T, E>`, `io::Result<T>`, ...).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// Whether a type mentions `impl Trait`, which can't be written inside a
/// function body.
fn contains_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(ident) => ident == "impl",
            TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(ty.to_token_stream())
}

/// `#[trace_impl]`: traces the selected methods of an impl block.
pub(crate) fn trace_impl(options: &Options, item: &mut ItemImpl) -> syn::Result<()> {
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        if remove_marker(&mut method.attrs) || has_trace_attr(&method.attrs) {
            continue;
        }
        let name = method.sig.ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name);
        if name.starts_with("__") || (name.starts_with('_') && !options.trace_private) {
            continue;
        }
        if method.sig.receiver().is_none() && !options.trace_static_methods {
            continue;
        }
        if method.sig.constness.is_some() {
            continue;
        }
        method.block = traced_block(options, &method.sig, &method.block)?;
    }
    Ok(())
}

/// Removes the `#[no_trace]` markers of every method.
pub(crate) fn remove_markers(item: &mut ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            remove_marker(&mut method.attrs);
        }
    }
}

/// Removes `#[no_trace]` attributes; returns whether there was one.
fn remove_marker(attrs: &mut Vec<Attribute>) -> bool {
    let before = attrs.len();
    attrs.retain(|attr| !attr.path().is_ident("no_trace"));
    attrs.len() != before
}

/// Whether the method is already traced on its own (`#[trace(...)]`,
/// `#[osprofiler::trace(...)]`).
fn has_trace_attr(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "trace")
    })
}
