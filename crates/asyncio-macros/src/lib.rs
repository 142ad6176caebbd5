//! `#[asyncio::main]` and `#[asyncio::test]`: an `async fn` run by
//! `asyncio::run` on a fresh event loop. Use them through the `asyncio` facade,
//! which re-exports them (the expansion names `::asyncio`).
//!
//! ```
//! #[asyncio::main]
//! async fn main() -> Result<(), asyncio::TaskError> {
//!     let n = asyncio::create_task(async { 21 * 2 }).await?;
//!     assert_eq!(n, 42);
//!     Ok(())
//! }
//! ```
//!
//! Options, in any order: `eager` installs `eager_task_factory` before the
//! body runs; `debug` turns the loop's debug mode on (as
//! `asyncio.run(main(), debug=True)`).

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Token};

/// Runs an `async fn main` under `asyncio::run`, as `asyncio.run(main())`.
///
/// The function keeps its return type: `async fn main() -> anyhow::Result<()>`
/// becomes `fn main() -> anyhow::Result<()>`.
///
/// Ctrl-C ends the program as it ends Python's `asyncio.run(main())`: the
/// main task is cancelled (its destructors run), the loop is closed (the
/// tasks left are cancelled and their cleanup runs), and then the process is
/// killed by SIGINT with its default action, so a shell sees status 130
/// (`asyncio::exit_interrupted`). If the main task ends without a value for
/// another reason (something cancelled it), `main` panics with the
/// `RunError`.
///
/// `#[asyncio::main(eager, debug, return_run_error)]`: `eager` starts tasks
/// under `eager_task_factory`, `debug` turns on the loop's debug mode, and
/// `return_run_error` hands the `RunError` (`RunError::Interrupted` for
/// Ctrl-C) to the caller of `main` as its `Err`, to handle it yourself: `main`
/// must then return a `Result` whose error type has `From<asyncio::RunError>`
/// (`anyhow::Error`, `Box<dyn Error>`, `asyncio::RunError` itself).
///
/// ```no_run
/// #[asyncio::main(return_run_error)]
/// async fn main() -> Result<(), asyncio::RunError> {
///     asyncio::sleep(std::time::Duration::from_secs(3600)).await;
///     Ok(())
/// }
/// ```
///
/// ```
/// #[asyncio::main(eager)]
/// async fn main() -> Result<(), asyncio::TaskError> {
///     // Under the eager factory the task ran inside create_task.
///     assert!(asyncio::create_task(async {}).done());
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Main)
}

/// Runs an `async fn` test on a fresh event loop (its own `asyncio::run`).
///
/// Takes the same options as `#[asyncio::main]`:
/// `#[asyncio::test(eager, debug)]`. The test may return a `Result`, as a
/// `#[test]` may.
///
/// ```
/// #[asyncio::test]
/// async fn a_task_returns_its_value() {
///     assert_eq!(asyncio::create_task(async { 7 }).await.unwrap(), 7);
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Test)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[asyncio::main]",
            Kind::Test => "#[asyncio::test]",
        }
    }
}

fn expand(args: TokenStream, item: TokenStream, kind: Kind) -> TokenStream {
    match try_expand(args, item.clone(), kind) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // The function as written comes along, so the only error is ours
            // (not a second one about a missing `main`).
            let mut out: TokenStream = e.to_compile_error().into();
            out.extend(item);
            out
        }
    }
}

fn try_expand(
    args: TokenStream,
    item: TokenStream,
    kind: Kind,
) -> syn::Result<proc_macro2::TokenStream> {
    let options = Punctuated::<Ident, Token![,]>::parse_terminated.parse(args)?;
    let (mut eager, mut debug, mut return_error) = (false, false, false);
    for opt in &options {
        match opt.to_string().as_str() {
            "eager" => eager = true,
            "debug" => debug = true,
            "return_run_error" if kind == Kind::Main => return_error = true,
            other => {
                let known = match kind {
                    Kind::Main => "`eager`, `debug` and `return_run_error`",
                    Kind::Test => "`eager` and `debug`",
                };
                return Err(syn::Error::new(
                    opt.span(),
                    format!(
                        "unknown option `{other}` of {}: the options are {known}",
                        kind.attr()
                    ),
                ));
            }
        }
    }
    let func: ItemFn = syn::parse(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!(
                "{} needs an `async fn`: write `async fn {}`",
                kind.attr(),
                sig.ident
            ),
        ));
    }
    if !sig.inputs.is_empty() {
        return Err(syn::Error::new(
            sig.inputs.span(),
            format!(
                "{} functions take no arguments: build what the body needs inside it",
                kind.attr()
            ),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("{} functions cannot be generic", kind.attr()),
        ));
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    let ident = &sig.ident;
    let output = &sig.output;
    let body = &func.block;
    let span = Span::call_site();
    let set_factory = eager.then(|| {
        quote_spanned! {span=>
            ::asyncio::set_task_factory(::asyncio::eager_task_factory);
        }
    });
    // Without the option the loop's default stands (`ASYNCIO_DEBUG`).
    let debug_call = debug.then(|| quote!(.debug(true)));
    let test_attr = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
    let what = kind.attr();
    let on_error = if return_error {
        quote! {
            ::core::result::Result::Err(error) => {
                ::core::result::Result::Err(::core::convert::From::from(error))
            }
        }
    } else {
        let interrupted = (kind == Kind::Main).then(|| {
            quote! {
                ::core::result::Result::Err(::asyncio::RunError::Interrupted) => {
                    ::asyncio::exit_interrupted()
                }
            }
        });
        quote! {
            #interrupted
            ::core::result::Result::Err(error) => {
                ::core::panic!("{}: the main task did not finish: {}", #what, error)
            }
        }
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis fn #ident() #output {
            let __asyncio_runner = ::asyncio::Runner::builder() #debug_call .build();
            let __asyncio_out = __asyncio_runner.run(async move {
                #set_factory
                #body
            });
            // Close first, as asyncio.run does before its exception goes on:
            // the tasks left are cancelled and their cleanup runs.
            ::core::mem::drop(__asyncio_runner);
            match __asyncio_out {
                ::core::result::Result::Ok(value) => value,
                #on_error
            }
        }
    })
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
