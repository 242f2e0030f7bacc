//! The types of a method's parameters and return value: what cannot travel
//! (borrows, `impl Trait`), and which parameter is the call context. Whether
//! a type is serde-serializable is left to the generated hidden checks, which
//! rustc reports at the type.

use proc_macro2::Span;
use quote::ToTokens;
use syn::{GenericArgument, Lifetime, PathArguments, Type};

use crate::errors::Errors;
use crate::model::Shape;

/// Where a type appears, for the wording of its errors.
#[derive(Clone, Copy)]
pub(super) enum Position {
    Argument,
    Return,
}

impl Position {
    /// `an argument` / `the return`.
    fn what(self) -> &'static str {
        match self {
            Self::Argument => "an argument",
            Self::Return => "the return",
        }
    }

    /// Why a borrow cannot be here.
    fn owned(self) -> &'static str {
        match self {
            Self::Argument => "arguments are decoded into owned values",
            Self::Return => "return values are decoded into owned values",
        }
    }
}

/// Reports borrowed and `impl Trait` types and borrowed lifetimes anywhere
/// in `ty`, in the order they are written.
pub(super) fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    match ty {
        Type::Reference(_) => not_borrowed(ty, position, errors),
        Type::ImplTrait(_) => not_impl_trait(ty, position, errors),
        _ => each_inner(ty, &mut |inner| match inner {
            Inner::Type(inner) => check_type(inner, position, errors),
            Inner::Lifetime(lifetime) => only_static_lifetime(lifetime, position, errors),
        }),
    }
}

/// A reference cannot be decoded into; says which owned type to use.
fn not_borrowed(ty: &Type, position: Position, errors: &mut Errors) {
    let Type::Reference(r) = ty else { return };
    let instead = match &*r.elem {
        Type::Path(p) if p.path.is_ident("str") => "use `String` instead of `&str`".to_string(),
        Type::Slice(s) => format!(
            "use `Vec<{0}>` instead of `&[{0}]`",
            s.elem.to_token_stream().to_string().replace(' ', "")
        ),
        _ => "use an owned type instead of a reference".to_string(),
    };
    errors.at(ty, format!("{}: {instead}", position.owned()));
}

/// `impl Trait` names no type to decode into.
fn not_impl_trait(ty: &Type, position: Position, errors: &mut Errors) {
    if let (Type::ImplTrait(bounds), Position::Return) = (ty, position) {
        let streams = bounds.bounds.iter().any(|bound| {
            matches!(bound, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == "Stream"))
        });
        if streams {
            errors.at(
                ty,
                "`impl Stream` cannot be the return type of a service method; return `sockets::Stream<T>` and make it with `sockets::Stream::new(stream)`",
            );
            return;
        }
    }
    errors.at(
        ty,
        format!(
            "`impl Trait` cannot be {} type of a service method; use a concrete type",
            position.what()
        ),
    );
}

/// A lifetime argument other than `'static` borrows.
fn only_static_lifetime(lifetime: &Lifetime, position: Position, errors: &mut Errors) {
    if lifetime.ident != "static" {
        errors.at(
            lifetime,
            format!(
                "{}: remove the lifetime `{lifetime}` and use an owned type",
                position.owned()
            ),
        );
    }
}

/// What a type is made of, one level down.
enum Inner<'a> {
    Type(&'a Type),
    Lifetime(&'a Lifetime),
}

/// Calls `visit` on the types and lifetimes directly inside `ty`, in order.
fn each_inner<'a>(ty: &'a Type, visit: &mut dyn FnMut(Inner<'a>)) {
    match ty {
        Type::Path(p) => {
            if let Some(qself) = &p.qself {
                visit(Inner::Type(&qself.ty));
            }
            for segment in &p.path.segments {
                let PathArguments::AngleBracketed(args) = &segment.arguments else {
                    continue;
                };
                for arg in &args.args {
                    match arg {
                        GenericArgument::Type(inner) => visit(Inner::Type(inner)),
                        GenericArgument::Lifetime(lifetime) => visit(Inner::Lifetime(lifetime)),
                        _ => {}
                    }
                }
            }
        }
        Type::Array(a) => visit(Inner::Type(&a.elem)),
        Type::Slice(s) => visit(Inner::Type(&s.elem)),
        Type::Paren(p) => visit(Inner::Type(&p.elem)),
        Type::Group(g) => visit(Inner::Type(&g.elem)),
        Type::Tuple(t) => t.elems.iter().for_each(|elem| visit(Inner::Type(elem))),
        _ => {}
    }
}

pub(super) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// How a parameter takes the call context.
pub(super) enum ContextRef {
    Shared,
    Mut,
    Owned,
}

/// Whether `ty` names the call context (a path ending in `Context`, by value
/// or borrowed), with the span of that `Context`.
pub(super) fn context_type(ty: &Type) -> Option<(ContextRef, Span)> {
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

/// What `ty` is spelled as, where that changes the generated code.
pub(super) fn shape(ty: &Type) -> Shape {
    let Some((path, argument)) = path_of(ty) else {
        return Shape::Other;
    };
    match argument {
        None if is_spelled(path, &["std", "string", "String"]) => Shape::String,
        Some(argument) if is_spelled(path, &["std", "vec", "Vec"]) && is_u8(argument) => {
            Shape::Bytes
        }
        _ => Shape::Other,
    }
}

/// The path `ty` is, and the one type argument of its last segment if it
/// has one; `None` for any other type or other generic arguments.
fn path_of(ty: &Type) -> Option<(&syn::Path, Option<&Type>)> {
    let ty = match ty {
        Type::Group(g) => &*g.elem,
        ty => ty,
    };
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let init = p.path.segments.iter().rev().skip(1);
    if p.qself.is_some() || init.into_iter().any(|s| !s.arguments.is_none()) {
        return None;
    }
    match &last.arguments {
        PathArguments::None => Some((&p.path, None)),
        PathArguments::AngleBracketed(args) => match args.args.first() {
            Some(GenericArgument::Type(argument)) if args.args.len() == 1 => {
                Some((&p.path, Some(argument)))
            }
            _ => None,
        },
        PathArguments::Parenthesized(_) => None,
    }
}

/// Whether `path` is spelled as the last segment of `full` alone, or as
/// `full` with or without a leading `::` (`String`, `std::string::String`,
/// `::std::string::String`).
fn is_spelled(path: &syn::Path, full: &[&str]) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => path.leading_colon.is_none() && full.last().is_some_and(|last| only == last),
        segments => segments == full,
    }
}

/// `u8`, spelled so.
fn is_u8(ty: &Type) -> bool {
    matches!(path_of(ty), Some((path, None)) if path.leading_colon.is_none() && path.is_ident("u8"))
}

/// The item type `T` when `ty` is spelled as a stream, `Stream<T>` (with any
/// path before it: `sockets::Stream<T>`).
pub(super) fn stream_item(ty: &Type) -> Option<&Type> {
    let (path, argument) = path_of(ty)?;
    let last = path.segments.last()?;
    (last.ident == "Stream").then_some(argument).flatten()
}
