//! One method: its signature, parameters, types and `#[sockets(...)]` options.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, Meta, Pat, PathArguments, ReturnType, Signature,
    Token, Type,
};

use super::names::upper_camel_case;
use super::strip;
use crate::errors::Errors;
use crate::model::{Arg, ContextParam, Method};

/// Serde handles tuples of up to 16 elements; arguments travel as one tuple.
const MAX_ARGS: usize = 16;

/// What a method is declared as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// A trait method: takes `&self`.
    Method,
    /// A `#[handler]` free function: takes no receiver.
    Handler,
}

/// Parses one method; `None` (with errors pushed) when it has any mistake.
pub(crate) fn method(
    attrs: &[Attribute],
    sig: &Signature,
    service: &str,
    rule: Rule,
    errors: &mut Errors,
) -> Option<Method> {
    let reported = errors.count();
    let ident = &sig.ident;
    let (open, notify) = options(attrs, errors);

    if sig.asyncness.is_none() {
        let message = match rule {
            Rule::Method => format!("service methods must be `async`: write `async fn {ident}`"),
            Rule::Handler => {
                format!("`#[sockets::handler]` needs an `async fn`: write `async fn {ident}`")
            }
        };
        errors.at(sig.fn_token, message);
    }
    if let Some(constness) = &sig.constness {
        errors.at(constness, "service methods cannot be `const`");
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety, "service methods cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "service methods cannot be `extern`");
    }
    if !sig.generics.params.is_empty() {
        let message = if sig.generics.lifetimes().count() == sig.generics.params.len() {
            "service methods cannot have lifetime parameters: arguments are decoded into owned values"
        } else {
            "service methods cannot be generic: each argument is decoded into one concrete type; remove the type parameters"
        };
        errors.at(&sig.generics, message);
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.at(clause, "service methods cannot have a `where` clause");
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "service methods cannot be variadic");
    }

    match (rule, sig.receiver()) {
        (Rule::Method, Some(receiver)) => {
            if let Some(message) = receiver_mistake(receiver) {
                errors.at(receiver, message);
            }
        }
        (Rule::Method, None) => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("service methods take `&self` first: write `fn {ident}(&self, ...)`"),
        )),
        (Rule::Handler, Some(receiver)) => errors.at(receiver,
            "`#[sockets::handler]` goes on a free function, not a method; declare methods in a `#[sockets::service]` trait",
        ),
        (Rule::Handler, None) => {}
    }

    let mut context = None;
    let mut args = Vec::new();
    let typed = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(typed) => Some(typed),
        FnArg::Receiver(_) => None,
    });
    for (position, input) in typed.enumerate() {
        if let Some(attr) = input.attrs.first() {
            errors.at(
                attr,
                "attributes on the parameters of a service method are not supported",
            );
            continue;
        }
        if let Some((by_ref, span)) = context_type(&input.ty) {
            let first = match rule {
                Rule::Method => "the call context must be the first parameter after `&self`",
                Rule::Handler => "the call context must be the first parameter",
            };
            match by_ref {
                _ if position != 0 => errors.at(&input.ty, first),
                ContextRef::Mut => errors.at(
                    &input.ty,
                    "take the call context as `&Context`; it cannot be borrowed mutably",
                ),
                ContextRef::Shared | ContextRef::Owned => {
                    context = Some(ContextParam {
                        by_ref: matches!(by_ref, ContextRef::Shared),
                        span,
                    });
                }
            }
            continue;
        }
        let arg_ident = match &*input.pat {
            Pat::Ident(pat)
                if pat.by_ref.is_none()
                    && pat.subpat.is_none()
                    && (pat.mutability.is_none() || rule == Rule::Handler) =>
            {
                Some(pat.ident.clone())
            }
            Pat::Ident(pat)
                if pat.mutability.is_some() && pat.by_ref.is_none() && pat.subpat.is_none() =>
            {
                errors.at(
                    pat.mutability,
                    "remove `mut`: a trait method declaration has no body to mutate in",
                );
                None
            }
            Pat::Wild(wild) => {
                errors.at(wild,
                    "give this argument a name: it names the request field and the client's parameter",
                );
                None
            }
            pat => {
                errors.at(pat,
                    "expected an identifier as the argument name, not a pattern; destructure it in the body instead",
                );
                None
            }
        };
        check_type(&input.ty, Position::Argument, errors);
        if let Some(arg_ident) = arg_ident {
            args.push(Arg {
                ident: arg_ident,
                ty: (*input.ty).clone(),
            });
        }
    }
    if let Some(extra) = args.get(MAX_ARGS) {
        errors.at(
            &extra.ident,
            format!("a service method takes at most {MAX_ARGS} arguments; group them in a struct"),
        );
    }

    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) if is_unit(ty) => None,
        ReturnType::Type(_, ty) => {
            check_type(ty, Position::Return, errors);
            if notify {
                errors.at(ty,
                    "a `notify` method sends no reply, so it cannot return a value; remove the return type",
                );
            }
            Some((**ty).clone())
        }
    };

    if errors.count() > reported {
        return None;
    }
    let (docs, cfgs, kept) = sort_attrs(attrs);
    let name = ident.unraw().to_string();
    let inputs = &sig.inputs;
    Some(Method {
        ident: ident.clone(),
        variant: Ident::new(&upper_camel_case(&name), ident.span()),
        wire_name: format!("{service}.{name}"),
        docs,
        cfgs,
        attrs: kept,
        open,
        notify,
        context,
        args,
        output,
        inputs: quote!(#inputs),
        original: TokenStream::new(),
    })
}

/// Why a trait method's receiver is not `&self`, if it is not.
fn receiver_mistake(receiver: &syn::Receiver) -> Option<String> {
    match &*receiver.ty {
        Type::Reference(r) if r.mutability.is_some() => Some(
            "service methods take `&self`, not `&mut self`: calls run concurrently, so keep mutable state behind a lock".into(),
        ),
        Type::Reference(r) if is_self(&r.elem) => None,
        ty if is_self(ty) => Some(
            "service methods take `&self`, not `self`: one service value serves every call".into(),
        ),
        ty => Some(format!(
            "service methods take `&self`, not `self: {}`",
            ty.to_token_stream().to_string().replace(' ', "")
        )),
    }
}

fn is_self(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

enum ContextRef {
    Shared,
    Mut,
    Owned,
}

/// Whether `ty` names the call context (a path ending in `Context`, by value
/// or borrowed), with the span of that `Context`.
fn context_type(ty: &Type) -> Option<(ContextRef, Span)> {
    fn context_ident(ty: &Type) -> Option<Span> {
        let Type::Path(p) = ty else { return None };
        let last = p.path.segments.last()?;
        (p.qself.is_none() && last.ident == "Context" && last.arguments.is_none())
            .then(|| last.ident.span())
    }
    match ty {
        Type::Reference(r) => {
            let span = context_ident(&r.elem)?;
            let kind = if r.mutability.is_some() {
                ContextRef::Mut
            } else {
                ContextRef::Shared
            };
            Some((kind, span))
        }
        ty => context_ident(ty).map(|span| (ContextRef::Owned, span)),
    }
}

/// Where a type appears, for the wording of its errors.
#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

/// Reports borrowed and `impl Trait` types, which cannot travel. Whether
/// the type is serde-serializable is left to the generated hidden checks,
/// which rustc reports at the type.
fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    let (what, owned) = match position {
        Position::Argument => ("an argument", "arguments are decoded into owned values"),
        Position::Return => ("the return", "return values are decoded into owned values"),
    };
    match ty {
        Type::Reference(r) => {
            let instead = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => {
                    "use `String` instead of `&str`".to_string()
                }
                Type::Slice(s) => format!(
                    "use `Vec<{0}>` instead of `&[{0}]`",
                    s.elem.to_token_stream().to_string().replace(' ', "")
                ),
                _ => "use an owned type instead of a reference".to_string(),
            };
            errors.at(ty, format!("{owned}: {instead}"));
        }
        Type::ImplTrait(_) => errors.at(
            ty,
            format!("`impl Trait` cannot be {what} type of a service method; use a concrete type"),
        ),
        Type::Path(p) => {
            if let Some(qself) = &p.qself {
                check_type(&qself.ty, position, errors);
            }
            for segment in &p.path.segments {
                let PathArguments::AngleBracketed(args) = &segment.arguments else {
                    continue;
                };
                for arg in &args.args {
                    match arg {
                        GenericArgument::Type(inner) => check_type(inner, position, errors),
                        GenericArgument::Lifetime(lifetime) if lifetime.ident != "static" => {
                            errors.at(
                                lifetime,
                                format!("{owned}: remove the lifetime `{lifetime}` and use an owned type"),
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
        Type::Array(a) => check_type(&a.elem, position, errors),
        Type::Slice(s) => check_type(&s.elem, position, errors),
        Type::Paren(p) => check_type(&p.elem, position, errors),
        Type::Group(g) => check_type(&g.elem, position, errors),
        Type::Tuple(t) => {
            for elem in &t.elems {
                check_type(elem, position, errors);
            }
        }
        _ => {}
    }
}

/// Parses the `#[sockets(...)]` options: `(open, notify)`; errors are pushed.
fn options(attrs: &[Attribute], errors: &mut Errors) -> (bool, bool) {
    let mut open = None::<Span>;
    let mut notify = None::<Span>;
    for attr in attrs.iter().filter(|a| a.path().is_ident("sockets")) {
        let Meta::List(list) = &attr.meta else {
            errors.at(attr, "expected `#[sockets(open)]` or `#[sockets(notify)]`");
            continue;
        };
        if list.tokens.is_empty() {
            errors.at(attr, "expected `open` or `notify` inside `#[sockets(...)]`");
            continue;
        }
        let parsed = list.parse_nested_meta(|meta| {
            let slot = if meta.path.is_ident("open") {
                &mut open
            } else if meta.path.is_ident("notify") {
                &mut notify
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
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    (open.is_some(), notify.is_some())
}

/// Splits a method's attributes into docs, cfgs, and everything to keep on the method.
fn sort_attrs(attrs: &[Attribute]) -> (Vec<Attribute>, Vec<Attribute>, Vec<Attribute>) {
    let kept = strip(attrs, true);
    let docs = kept
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    let cfgs = kept
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .cloned()
        .collect();
    (docs, cfgs, kept)
}
