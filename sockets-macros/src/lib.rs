//! Procedural macros for `sockets`. Use them through the `sockets` crate,
//! which re-exports them and documents them for users (`sockets::service`,
//! `sockets::handler`); the generated code names only `::sockets` paths, or
//! paths under the one given as `#[sockets::service(crate = "...")]`.
//!
//! # Pipeline
//!
//! Each entry point is one line. `expand` runs parse → check → generate:
//! `parse` turns `syn` items into the `model` (one `Method` per method,
//! keeping the user's tokens for spans), reporting every per-item mistake;
//! `check` reports what needs the whole service (duplicates, clashes with
//! generated names); `expand/service.rs` emits one item per function from the
//! model alone. Errors are collected (`errors::collect` appends them all, so
//! none can be forgotten), methods with mistakes are left out of generation,
//! and an item that cannot be a service at all is re-emitted as written.
//!
//! # Shapes chosen, and the ones rejected
//!
//! - **Serving: a `CalculatorServer<T>` wrapper**, not a blanket
//!   `impl<T: Calculator> Service for T`: a type implementing two services
//!   would get two conflicting `Service` impls. A provided `Calculator::serve`
//!   method was rejected too: it would reserve a method name in the user's
//!   trait, and `x.serve()` is ambiguous when a type implements two services
//!   and both traits are in scope.
//! - **Declared `Result`s stay opaque**: the client returns
//!   `Result<Result<T, E>, sockets::Error>`. Recognising `Result` by its
//!   spelling would break on aliases (`io::Result<T>`) and shadowing, and
//!   flattening would force `E: From<sockets::Error>` on every error type.
//! - **Context: an optional first parameter typed `&Context` / `Context`**,
//!   left out of the request and the client. A task-local was rejected: it
//!   hides a dependency in the signature and fails at run time, not compile
//!   time, when used outside a handler.
//! - **Free functions: `#[service] mod name { #[handler] async fn … }`.**
//!   A function-like `service!(Echo { echo, whoami })` sees only names; the
//!   client and the request enum need every argument's name and type, which
//!   live in other items a proc macro cannot read. Bridging them needs either a
//!   hidden `macro_rules!` per handler chained by callbacks (order-dependent
//!   textual scoping, "cannot find macro" errors when a marker is missing) or
//!   type-level descriptors (the client would take argument tuples). An
//!   attribute on an inline module sees every signature in one invocation,
//!   and the generated items go inside the module, where private handlers are
//!   visible.
//! - **Arguments as one tuple**: readable generated code and serde's own
//!   tuple impls; the price is a limit of 16 arguments, checked with a clear
//!   message (group more in a struct).

mod check;
mod errors;
mod expand;
mod model;
mod parse;

use proc_macro::TokenStream;

/// Turns a trait or an inline module of handlers into a service; see `sockets::service`.
#[proc_macro_attribute]
pub fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(args.into(), item.into()).into()
}

/// Marks a free function of a `#[service] mod` as a method; see `sockets::handler`.
#[proc_macro_attribute]
pub fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::handler(args.into(), item.into()).into()
}
