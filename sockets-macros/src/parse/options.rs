//! A method's `#[sockets(...)]` options: `open`, `notify`, `validate` and
//! `guard = path::to::fn`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Meta, Path, Token};

use crate::errors::Errors;

/// The options of one method.
pub(super) struct MethodOptions {
    pub(super) open: bool,
    pub(super) notify: bool,
    pub(super) validate: bool,
    pub(super) guard: Option<Path>,
}

/// The options read so far, each with where it was given.
#[derive(Default)]
struct Options {
    open: Option<Span>,
    notify: Option<Span>,
    validate: Option<Span>,
    guard: Option<Path>,
}

/// What the options are, for messages.
const EXPECTED: &str = "expected `open`, `notify`, `validate` or `guard = path::to::fn`";

/// Parses the `#[sockets(...)]` options; errors are pushed.
pub(super) fn options(attrs: &[Attribute], errors: &mut Errors) -> MethodOptions {
    let mut options = Options::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sockets")) {
        option_attr(attr, &mut options, errors);
    }
    MethodOptions {
        open: options.open.is_some(),
        notify: options.notify.is_some(),
        validate: options.validate.is_some(),
        guard: options.guard,
    }
}

/// One `#[sockets(...)]`: a non-empty list of options.
fn option_attr(attr: &Attribute, options: &mut Options, errors: &mut Errors) {
    let Meta::List(list) = &attr.meta else {
        errors.at(attr, format!("{EXPECTED} inside `#[sockets(...)]`"));
        return;
    };
    if list.tokens.is_empty() {
        errors.at(attr, format!("{EXPECTED} inside `#[sockets(...)]`"));
        return;
    }
    if let Err(error) = list.parse_nested_meta(|meta| option(&meta, options)) {
        errors.push(error);
    }
}

/// One option: known, given once; a flag without a value, or the guard's path.
fn option(meta: &ParseNestedMeta<'_>, options: &mut Options) -> syn::Result<()> {
    if meta.path.is_ident("guard") {
        return guard(meta, options);
    }
    let slot = if meta.path.is_ident("open") {
        &mut options.open
    } else if meta.path.is_ident("notify") {
        &mut options.notify
    } else if meta.path.is_ident("validate") {
        &mut options.validate
    } else {
        let path = meta.path.to_token_stream().to_string().replace(' ', "");
        return Err(meta.error(format!("unknown option `{path}`; {EXPECTED}")));
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

/// `guard = path::to::fn`: a path, given once.
fn guard(meta: &ParseNestedMeta<'_>, options: &mut Options) -> syn::Result<()> {
    const USAGE: &str =
        "write `guard = path::to::fn`, a `fn(&Context, &str) -> Result<(), Refusal>`";
    if options.guard.is_some() {
        return Err(meta.error(
            "duplicate option `guard`: a method has one guard (combine checks in one function)",
        ));
    }
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(format!("`guard` needs a function: {USAGE}")));
    }
    let value = meta.value()?;
    let path: Path = value
        .parse()
        .map_err(|error| syn::Error::new(error.span(), format!("expected a path: {USAGE}")))?;
    options.guard = Some(path);
    Ok(())
}
