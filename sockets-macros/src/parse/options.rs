//! A method's `#[sockets(...)]` options: `open`, `notify`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Meta, Token};

use crate::errors::Errors;

/// The options read so far, each with where it was given.
#[derive(Default)]
struct Options {
    open: Option<Span>,
    notify: Option<Span>,
}

/// Parses the `#[sockets(...)]` options: `(open, notify)`; errors are pushed.
pub(super) fn options(attrs: &[Attribute], errors: &mut Errors) -> (bool, bool) {
    let mut options = Options::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sockets")) {
        option_attr(attr, &mut options, errors);
    }
    (options.open.is_some(), options.notify.is_some())
}

/// One `#[sockets(...)]`: a non-empty list of options.
fn option_attr(attr: &Attribute, options: &mut Options, errors: &mut Errors) {
    let Meta::List(list) = &attr.meta else {
        errors.at(attr, "expected `#[sockets(open)]` or `#[sockets(notify)]`");
        return;
    };
    if list.tokens.is_empty() {
        errors.at(attr, "expected `open` or `notify` inside `#[sockets(...)]`");
        return;
    }
    if let Err(error) = list.parse_nested_meta(|meta| option(&meta, options)) {
        errors.push(error);
    }
}

/// One option: known, without a value, given once.
fn option(meta: &ParseNestedMeta<'_>, options: &mut Options) -> syn::Result<()> {
    let slot = if meta.path.is_ident("open") {
        &mut options.open
    } else if meta.path.is_ident("notify") {
        &mut options.notify
    } else {
        let path = meta.path.to_token_stream().to_string().replace(' ', "");
        return Err(meta.error(format!(
            "unknown option `{path}`; expected `open` or `notify`"
        )));
    };
    let name = meta.path.to_token_stream().to_string();
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            meta.input.span(),
            format!("`{name}` takes no value: write `{name}`"),
        ));
    }
    if slot.is_some() {
        return Err(meta.error(format!("duplicate option `{name}`")));
    }
    *slot = Some(meta.path.span());
    Ok(())
}
