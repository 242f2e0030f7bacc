//! `#[sockets::handler]` on its own. Inside a `#[sockets::service] mod` the
//! service macro reads and removes the marker, so reaching this expansion
//! means the attribute is misplaced: it reports why and re-emits the item.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::errors::Errors;
use crate::parse;

pub(super) fn standalone(
    args: &TokenStream,
    item: TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    if !args.is_empty() {
        errors.at(
            args,
            "`#[sockets::handler]` takes no arguments; write options as `#[sockets(open)]` or `#[sockets(notify)]`",
        );
    }
    let Ok(mut function) = syn::parse2::<syn::ItemFn>(item.clone()) else {
        errors.at(
            &item,
            "`#[sockets::handler]` goes on an `async fn` inside a `#[sockets::service] mod`",
        );
        return item;
    };
    let sig = &function.sig;
    let ident = &sig.ident;
    if let Some(receiver) = sig.receiver() {
        errors.at(
            receiver,
            "`#[sockets::handler]` goes on a free function, not a method; declare methods in a `#[sockets::service]` trait",
        );
    } else {
        if sig.asyncness.is_none() {
            errors.at(
                sig.fn_token,
                format!("`#[sockets::handler]` needs an `async fn`: write `async fn {ident}`"),
            );
        }
        errors.at(
            ident,
            format!(
                "`#[sockets::handler]` marks a method of a `#[sockets::service] mod`; move `{ident}` into one"
            ),
        );
    }
    function.attrs = parse::strip(&function.attrs, None);
    function.into_token_stream()
}
