//! Procedural macros for `sockets`. Use them through the `sockets` crate,
//! which re-exports them and documents them; the generated code names only
//! `::sockets` paths.
//!
//! Each entry point is one line: [`expand`] runs parse → check → generate and
//! falls back to the user's item plus every error it found.

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
