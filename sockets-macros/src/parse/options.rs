//! A method's `#[sockets(...)]` options: `open`, `notify`, `validate`,
//! `guard = path::to::fn` and `window(items = N, bytes = M)`.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, LitInt, Meta, Path, Token};

use crate::errors::Errors;

/// The options of one method.
pub(super) struct MethodOptions {
    pub(super) open: bool,
    pub(super) notify: bool,
    pub(super) validate: bool,
    pub(super) guard: Option<Path>,
    pub(super) window: Option<Window>,
}

/// `window(items = N, bytes = M)`, with where it was given.
pub(super) struct Window {
    pub(super) span: Span,
    pub(super) items: LitInt,
    pub(super) bytes: LitInt,
}

/// The options read so far, each with where it was given.
#[derive(Default)]
struct Options {
    open: Option<Span>,
    notify: Option<Span>,
    validate: Option<Span>,
    guard: Option<Path>,
    window: Option<Window>,
}

/// What the options are, for messages.
const EXPECTED: &str = "expected `open`, `notify`, `validate`, `guard = path::to::fn` or `window(items = N, bytes = M)`";

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
        window: options.window,
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
    if meta.path.is_ident("window") {
        return window(meta, options);
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

/// `window(items = N, bytes = M)`: both counts, positive `u32`s, given once.
fn window(meta: &ParseNestedMeta<'_>, options: &mut Options) -> syn::Result<()> {
    const USAGE: &str = "write `window(items = N, bytes = M)`";
    if options.window.is_some() {
        return Err(meta.error("duplicate option `window`"));
    }
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("`window` needs its sizes: {USAGE}")));
    }
    let span = meta.path.span();
    let (mut items, mut bytes) = (None, None);
    meta.parse_nested_meta(|inner| {
        let slot = if inner.path.is_ident("items") {
            &mut items
        } else if inner.path.is_ident("bytes") {
            &mut bytes
        } else {
            return Err(inner.error(format!("expected `items` or `bytes`: {USAGE}")));
        };
        let value: LitInt = inner.value()?.parse()?;
        match value.base10_parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(syn::Error::new(
                    value.span(),
                    "a window size is a positive `u32`",
                ));
            }
        }
        *slot = Some(value);
        Ok(())
    })?;
    match (items, bytes) {
        (Some(items), Some(bytes)) => {
            options.window = Some(Window { span, items, bytes });
            Ok(())
        }
        _ => Err(syn::Error::new(
            span,
            format!("`window` needs both sizes: {USAGE}"),
        )),
    }
}
