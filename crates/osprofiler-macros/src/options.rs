//! Parsing of the attribute arguments: `"name", key = value, ...`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, Token};

/// Which attribute is being parsed: they accept different options.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Trace,
    TraceImpl,
}

impl Attr {
    fn display(self) -> &'static str {
        match self {
            Attr::Trace => "#[trace]",
            Attr::TraceImpl => "#[trace_impl]",
        }
    }

    fn known_options(self) -> &'static [&'static str] {
        match self {
            Attr::Trace => &["hide_args", "hide_result", "info"],
            Attr::TraceImpl => &[
                "hide_args",
                "hide_result",
                "info",
                "trace_private",
                "trace_static_methods",
            ],
        }
    }
}

/// The options of `#[trace]` (all) and `#[trace_impl]` (all, plus the
/// method selection ones).
pub(crate) struct Options {
    /// Name of the trace point: `"rpc"`, `"db"`, ...
    pub(crate) name: Expr,
    /// Leave `args`/`kwargs` out of the start info.
    pub(crate) hide_args: bool,
    /// Leave the result out of the stop info (default `true`, as in Python).
    pub(crate) hide_result: bool,
    /// Extra start info: an expression giving a JSON object.
    pub(crate) info: Option<Expr>,
    /// `#[trace_impl]`: also trace methods whose name starts with `_`.
    pub(crate) trace_private: bool,
    /// `#[trace_impl]`: also trace associated functions without `self`.
    pub(crate) trace_static_methods: bool,
}

enum Arg {
    Named { key: Ident, value: Expr },
    Positional(Expr),
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let key: Ident = input.parse()?;
            let _: Token![=] = input.parse()?;
            let value: Expr = input.parse()?;
            Ok(Arg::Named { key, value })
        } else {
            Ok(Arg::Positional(input.parse()?))
        }
    }
}

fn parse_bool(key: &Ident, value: &Expr) -> syn::Result<bool> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{key}` takes `true` or `false`"),
        )),
    }
}

impl Options {
    pub(crate) fn parse(attr: Attr, tokens: TokenStream) -> syn::Result<Options> {
        let args = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut name = None;
        let mut options = Options {
            name: Expr::Verbatim(TokenStream::new()),
            hide_args: false,
            hide_result: true,
            info: None,
            trace_private: false,
            trace_static_methods: false,
        };
        let mut seen: Vec<String> = Vec::new();
        for arg in args {
            match arg {
                Arg::Positional(expr) => {
                    if name.is_some() || !seen.is_empty() {
                        return Err(syn::Error::new_spanned(
                            expr,
                            "the trace point name must be the first and only positional \
                             argument, the rest are `key = value`",
                        ));
                    }
                    name = Some(expr);
                }
                Arg::Named { key, value } => {
                    let key_text = key.to_string();
                    if !attr.known_options().contains(&key_text.as_str()) {
                        return Err(syn::Error::new_spanned(
                            &key,
                            format!(
                                "unknown option `{key_text}` of {}; expected one of: {}",
                                attr.display(),
                                attr.known_options().join(", ")
                            ),
                        ));
                    }
                    if seen.contains(&key_text) {
                        return Err(syn::Error::new_spanned(
                            &key,
                            format!("option `{key_text}` given twice"),
                        ));
                    }
                    match key_text.as_str() {
                        "hide_args" => options.hide_args = parse_bool(&key, &value)?,
                        "hide_result" => options.hide_result = parse_bool(&key, &value)?,
                        "trace_private" => options.trace_private = parse_bool(&key, &value)?,
                        "trace_static_methods" => {
                            options.trace_static_methods = parse_bool(&key, &value)?
                        }
                        _ => options.info = Some(value),
                    }
                    seen.push(key_text);
                }
            }
        }
        match name {
            Some(name) => {
                options.name = name;
                Ok(options)
            }
            None => Err(syn::Error::new(
                Span::call_site(),
                format!(
                    "{} needs the name of the trace point first, e.g. {}",
                    attr.display(),
                    match attr {
                        Attr::Trace => "#[trace(\"rpc\")]",
                        Attr::TraceImpl => "#[trace_impl(\"rpc\")]",
                    }
                ),
            )),
        }
    }
}
