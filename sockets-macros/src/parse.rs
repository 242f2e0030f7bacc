//! `syn` → [`model`](crate::model): per-item checks. Every mistake is pushed
//! to [`Errors`] and parsing goes on, so one compile reports them all. A method
//! with a mistake is left out of the model (its item is still re-emitted).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, Item, ItemMod, ItemTrait, Meta, Pat, Path, Token, TraitItem};

mod args;
mod method;
mod names;
mod options;
mod types;

use crate::errors::Errors;
use crate::model::{Kind, Service};
pub(crate) use args::service_args;
use method::{Rule, method};
use names::{names, snake_case};

/// Parses the item under `#[sockets::service]`, whose generated code names
/// the runtime `krate`; `None` when it cannot be a service at all (the caller
/// then re-emits it as written).
pub(crate) fn service(item: &Item, krate: Path, errors: &mut Errors) -> Option<Service> {
    match item {
        Item::Trait(item) => trait_service(item, krate, errors),
        Item::Mod(item) => module_service(item, krate, errors),
        other => {
            errors.at(
                item_head(other),
                "`#[sockets::service]` goes on a trait or on an inline module of `#[sockets::handler]` functions",
            );
            None
        }
    }
}

fn trait_service(item: &ItemTrait, krate: Path, errors: &mut Errors) -> Option<Service> {
    let mut fatal = false;
    if let Some(unsafety) = &item.unsafety {
        errors.at(unsafety, "a service trait cannot be `unsafe`");
        fatal = true;
    }
    if let Some(auto) = &item.auto_token {
        errors.at(auto, "a service trait cannot be an `auto` trait");
        fatal = true;
    }
    if !item.generics.params.is_empty() {
        errors.at(
            &item.generics,
            "a service trait cannot be generic: its methods' types are fixed on the wire",
        );
        fatal = true;
    }
    if let Some(clause) = &item.generics.where_clause {
        errors.at(clause, "a service trait cannot have a `where` clause");
        fatal = true;
    }
    let attrs = service_attrs(&item.attrs, errors);
    let wire_name = snake_case(&item.ident.unraw().to_string());
    let mut methods = Vec::new();
    let mut verbatim = Vec::new();
    let mut has_fn = false;
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(original) => {
                has_fn = true;
                let mut f = original.clone();
                f.attrs = strip(&f.attrs, None);
                if let Some(body) = &f.default {
                    errors.at(
                        body,
                        "a service method cannot have a default body; implement it in the `impl` instead",
                    );
                }
                let parsed = method(
                    &original.attrs,
                    &f.sig,
                    &wire_name,
                    Rule::Method,
                    &krate,
                    errors,
                );
                match parsed {
                    Some(mut m) if f.default.is_none() => {
                        m.original = f.to_token_stream();
                        methods.push(m);
                    }
                    _ => verbatim.push(without_patterns(f).to_token_stream()),
                }
            }
            other => {
                errors.at(
                    other,
                    "a service trait holds only `async fn` methods; move this item out of the trait",
                );
            }
        }
    }
    if !has_fn {
        errors.at(
            &item.ident,
            "a service needs at least one method: add an `async fn` to this trait",
        );
    }
    if fatal {
        return None;
    }
    Some(Service {
        kind: Kind::Trait {
            attrs,
            supertraits: item.supertraits.iter().cloned().collect(),
            verbatim,
        },
        vis: item.vis.clone(),
        names: names(&item.ident),
        ident: item.ident.clone(),
        krate,
        cfgs: item
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
        doc: doc_text(&item.attrs),
        wire_name,
        methods,
    })
}

fn module_service(item: &ItemMod, krate: Path, errors: &mut Errors) -> Option<Service> {
    let Some((_, content)) = &item.content else {
        errors.at(
            quote!(#item),
            "`#[sockets::service]` needs an inline module: write `mod name { ... }` with the handlers inside",
        );
        return None;
    };
    let attrs = service_attrs(&item.attrs, errors);
    let wire_name = snake_case(&item.ident.unraw().to_string());
    let mut methods = Vec::new();
    let mut items = Vec::new();
    let mut declared = Vec::new();
    let mut has_handler = false;
    for inner in content {
        match inner {
            Item::Fn(original) if original.attrs.iter().any(|a| is_handler_marker(a, &krate)) => {
                has_handler = true;
                for marker in original
                    .attrs
                    .iter()
                    .filter(|a| is_handler_marker(a, &krate))
                {
                    if !matches!(marker.meta, Meta::Path(_)) {
                        errors.at(
                            &marker.meta,
                            "`#[sockets::handler]` takes no arguments; write options as `#[sockets(open)]` or `#[sockets(notify)]`",
                        );
                    }
                }
                let mut f = original.clone();
                f.attrs = strip(&f.attrs, Some(&krate));
                if let Some(m) = method(
                    &original.attrs,
                    &f.sig,
                    &wire_name,
                    Rule::Handler,
                    &krate,
                    errors,
                ) {
                    methods.push(m);
                }
                items.push(f.to_token_stream());
            }
            Item::Fn(f) => {
                if let Some(attr) = f.attrs.iter().find(|a| a.path().is_ident("sockets")) {
                    errors.at(
                        attr,
                        "`#[sockets(...)]` options apply to handlers; mark this function `#[sockets::handler]`",
                    );
                }
                let mut f = f.clone();
                f.attrs = strip(&f.attrs, None);
                items.push(f.to_token_stream());
            }
            other => {
                if let Some(ident) = type_namespace_ident(other) {
                    declared.push(ident.clone());
                }
                items.push(other.to_token_stream());
            }
        }
    }
    if !has_handler {
        errors.at(
            &item.ident,
            "a service needs at least one method: mark an `async fn` in this module with `#[sockets::handler]`",
        );
    }
    Some(Service {
        kind: Kind::Module {
            attrs,
            items,
            declared,
        },
        vis: item.vis.clone(),
        names: names(&item.ident),
        ident: item.ident.clone(),
        krate,
        // The generated items live inside the module, under its own `#[cfg]`s.
        cfgs: Vec::new(),
        doc: doc_text(&item.attrs),
        wire_name,
        methods,
    })
}

/// The text of the doc comments among `attrs` (`///`, `//!` or `#[doc =
/// "..."]`), one line each, without the space after `///`.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .flat_map(|text| {
            text.lines()
                .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// The attributes of the trait or module, minus any stray `#[sockets(...)]`.
fn service_attrs(attrs: &[Attribute], errors: &mut Errors) -> Vec<Attribute> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("sockets")) {
        errors.at(
            attr,
            "`#[sockets(...)]` options go on methods, not on the service",
        );
    }
    strip(attrs, None)
}

/// `f` with every parameter pattern that is not a plain name replaced by `_`,
/// so re-emitting a rejected method adds no rustc error to ours.
fn without_patterns(mut f: syn::TraitItemFn) -> syn::TraitItemFn {
    for input in &mut f.sig.inputs {
        if let FnArg::Typed(typed) = input
            && !matches!(&*typed.pat, Pat::Ident(p) if p.by_ref.is_none() && p.mutability.is_none() && p.subpat.is_none())
        {
            *typed.pat = Pat::Wild(syn::PatWild {
                attrs: Vec::new(),
                underscore_token: Token![_](typed.pat.span()),
            });
        }
    }
    f
}

/// The attributes minus `#[sockets(...)]` (and, with `markers` naming the
/// runtime's path, minus the handler markers of that runtime).
pub(crate) fn strip(attrs: &[Attribute], markers: Option<&Path>) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| {
            !(a.path().is_ident("sockets") || markers.is_some_and(|k| is_handler_marker(a, k)))
        })
        .cloned()
        .collect()
}

/// `#[handler]`, `#[sockets::handler]`, `#[::sockets::handler]`, or the
/// `handler` of the runtime's path `krate` (`#[rpc::handler]` under
/// `crate = "::rpc"`): the marker the service macro reads (and removes)
/// inside a service module.
pub(crate) fn is_handler_marker(attr: &Attribute, krate: &Path) -> bool {
    let path = attr.path();
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let krate: Vec<String> = krate.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.split_last() {
        Some((name, [])) => name == "handler" && path.leading_colon.is_none(),
        Some((name, prefix)) => name == "handler" && (prefix == ["sockets"] || prefix == krate),
        None => false,
    }
}

/// The identifier an item declares in the type namespace, if any.
fn type_namespace_ident(item: &Item) -> Option<&Ident> {
    match item {
        Item::Struct(i) => Some(&i.ident),
        Item::Enum(i) => Some(&i.ident),
        Item::Union(i) => Some(&i.ident),
        Item::Type(i) => Some(&i.ident),
        Item::Trait(i) => Some(&i.ident),
        Item::TraitAlias(i) => Some(&i.ident),
        _ => None,
    }
}

/// The smallest tokens that name an unsupported item.
fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Struct(i) => {
            let (keyword, ident) = (&i.struct_token, &i.ident);
            quote!(#keyword #ident)
        }
        Item::Enum(i) => {
            let (keyword, ident) = (&i.enum_token, &i.ident);
            quote!(#keyword #ident)
        }
        Item::Fn(i) => {
            let (keyword, ident) = (&i.sig.fn_token, &i.sig.ident);
            quote!(#keyword #ident)
        }
        Item::Impl(i) => {
            let (keyword, ty) = (&i.impl_token, &i.self_ty);
            quote!(#keyword #ty)
        }
        _ => item.to_token_stream(),
    }
}
