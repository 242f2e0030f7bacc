//! One method: its signature and parameters. Each rule is one small function
//! that reports its own mistake to [`Errors`]; [`method`] runs them all, so
//! every mistake of a method is reported in one compile, and drops the method
//! from the model if any rule reported one. Types are checked in `types.rs`,
//! the `#[sockets(...)]` options read in `options.rs`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{Attribute, FnArg, Ident, Pat, PatType, Path, ReturnType, Signature, Type};

use super::names::upper_camel_case;
use super::options::{MethodOptions, options};
use super::types::{ContextRef, Position, check_type, context_type, is_unit, shape, stream_item};
use super::{doc_text, strip};
use crate::errors::Errors;
use crate::model::{Arg, ContextParam, Method, Shape, StreamParam};

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

/// A rule about the signature as a whole.
type SignatureRule = fn(&Signature, Rule, &mut Errors);

/// The signature rules, in the order their mistakes are reported.
const SIGNATURE_RULES: &[SignatureRule] = &[
    is_async,
    not_const,
    not_unsafe,
    not_extern,
    not_generic,
    no_where_clause,
    not_variadic,
    receiver,
];

/// Parses one method of the service `service` served by the runtime
/// `krate`; `None` (with errors pushed) when it has any mistake.
pub(crate) fn method(
    attrs: &[Attribute],
    sig: &Signature,
    service: &str,
    rule: Rule,
    krate: &Path,
    errors: &mut Errors,
) -> Option<Method> {
    let reported = errors.count();
    let MethodOptions {
        open,
        notify,
        validate,
        guard,
        window,
    } = options(attrs, errors);
    for check in SIGNATURE_RULES {
        check(sig, rule, errors);
    }
    let (context, args, stream_in) = parameters(sig, rule, errors);
    at_most_max_args(&args, errors);
    if notify && let Some(stream) = &stream_in {
        errors.at(
            &stream.ty,
            "a `notify` method sends no reply and opens no stream, so it cannot take a stream; remove `notify` to stream to the callee",
        );
    }
    let output = output(sig, notify, errors);
    let output_shape = output.as_ref().map_or(Shape::Other, shape);
    let stream_out = output.as_ref().and_then(stream_item).cloned();
    if let Some(window) = &window
        && stream_out.is_none()
        && stream_in.is_none()
    {
        errors.push(syn::Error::new(
            window.span,
            "`window` applies to a method that returns or takes a `sockets::Stream<T>`",
        ));
    }
    if errors.count() > reported {
        return None;
    }

    let ident = &sig.ident;
    let (docs, cfgs, kept) = sort_attrs(attrs, krate);
    let name = ident.unraw().to_string();
    let inputs = &sig.inputs;
    Some(Method {
        ident: ident.clone(),
        variant: Ident::new(&upper_camel_case(&name), ident.span()),
        wire_name: format!("{service}.{name}"),
        doc: doc_text(&docs),
        docs,
        cfgs,
        attrs: kept,
        open,
        notify,
        validate,
        guard,
        context,
        args,
        output,
        output_shape,
        stream_out,
        stream_in,
        window: window.map(|w| (w.items, w.bytes)),
        inputs: quote!(#inputs),
        original: TokenStream::new(),
    })
}

/// Methods are `async fn`.
fn is_async(sig: &Signature, rule: Rule, errors: &mut Errors) {
    if sig.asyncness.is_some() {
        return;
    }
    let ident = &sig.ident;
    let message = match rule {
        Rule::Method => format!("service methods must be `async`: write `async fn {ident}`"),
        Rule::Handler => {
            format!("`#[sockets::handler]` needs an `async fn`: write `async fn {ident}`")
        }
    };
    errors.at(sig.fn_token, message);
}

/// Methods are not `const fn`.
fn not_const(sig: &Signature, _: Rule, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.at(constness, "service methods cannot be `const`");
    }
}

/// Methods are not `unsafe fn`.
fn not_unsafe(sig: &Signature, _: Rule, errors: &mut Errors) {
    if let Some(unsafety) = &sig.unsafety {
        errors.at(unsafety, "service methods cannot be `unsafe`");
    }
}

/// Methods have no ABI.
fn not_extern(sig: &Signature, _: Rule, errors: &mut Errors) {
    if let Some(abi) = &sig.abi {
        errors.at(abi, "service methods cannot be `extern`");
    }
}

/// Methods have neither type nor lifetime parameters.
fn not_generic(sig: &Signature, _: Rule, errors: &mut Errors) {
    let generics = &sig.generics;
    if generics.params.is_empty() {
        return;
    }
    let message = if generics.lifetimes().count() == generics.params.len() {
        "service methods cannot have lifetime parameters: arguments are decoded into owned values"
    } else {
        "service methods cannot be generic: each argument is decoded into one concrete type; remove the type parameters"
    };
    errors.at(generics, message);
}

/// Methods have no `where` clause.
fn no_where_clause(sig: &Signature, _: Rule, errors: &mut Errors) {
    if let Some(clause) = &sig.generics.where_clause {
        errors.at(clause, "service methods cannot have a `where` clause");
    }
}

/// Methods are not variadic.
fn not_variadic(sig: &Signature, _: Rule, errors: &mut Errors) {
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "service methods cannot be variadic");
    }
}

/// A trait method takes `&self`; a handler takes no receiver.
fn receiver(sig: &Signature, rule: Rule, errors: &mut Errors) {
    match (rule, sig.receiver()) {
        (Rule::Method, Some(receiver)) => {
            if let Some(message) = receiver_mistake(receiver) {
                errors.at(receiver, message);
            }
        }
        (Rule::Method, None) => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "service methods take `&self` first: write `fn {}(&self, ...)`",
                sig.ident
            ),
        )),
        (Rule::Handler, Some(receiver)) => errors.at(
            receiver,
            "`#[sockets::handler]` goes on a free function, not a method; declare methods in a `#[sockets::service]` trait",
        ),
        (Rule::Handler, None) => {}
    }
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

/// The call context, the parameters that travel and the stream parameter,
/// each parameter checked by the rules below in turn.
fn parameters(
    sig: &Signature,
    rule: Rule,
    errors: &mut Errors,
) -> (Option<ContextParam>, Vec<Arg>, Option<StreamParam>) {
    let mut context = None;
    let mut args = Vec::new();
    let mut stream: Option<StreamParam> = None;
    // A stream parameter followed by others: reported once, at the stream.
    let mut misplaced = false;
    let typed = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(typed) => Some(typed),
        FnArg::Receiver(_) => None,
    });
    for (position, input) in typed.enumerate() {
        if !no_attributes(input, errors) {
            continue;
        }
        if let Some((by_ref, span)) = context_type(&input.ty) {
            if let Some(param) = context_param(input, by_ref, span, position, rule, errors) {
                context = Some(param);
            }
            continue;
        }
        let ident = arg_name(&input.pat, rule, errors);
        if let Some(first) = &stream {
            if stream_item(&input.ty).is_some() {
                errors.at(
                    &input.ty,
                    format!(
                        "a method takes at most one stream; `{}` already is its stream of items from the caller",
                        first.ident
                    ),
                );
            } else if !misplaced {
                misplaced = true;
                errors.at(
                    &first.ty,
                    format!(
                        "a stream parameter must be the last parameter: move `{}` after the others",
                        first.ident
                    ),
                );
            }
            continue;
        }
        if let Some(item) = stream_item(&input.ty) {
            check_type(item, Position::Argument, errors);
            if let Some(ident) = ident {
                stream = Some(StreamParam {
                    ident,
                    ty: (*input.ty).clone(),
                    item: item.clone(),
                });
            }
            continue;
        }
        check_type(&input.ty, Position::Argument, errors);
        if let Some(ident) = ident {
            args.push(Arg {
                ident,
                ty: (*input.ty).clone(),
                shape: shape(&input.ty),
            });
        }
    }
    (context, args, stream)
}

/// Parameters carry no attributes; `false` (reported) when one does.
fn no_attributes(input: &PatType, errors: &mut Errors) -> bool {
    let Some(attr) = input.attrs.first() else {
        return true;
    };
    errors.at(
        attr,
        "attributes on the parameters of a service method are not supported",
    );
    false
}

/// The call context comes first and is not borrowed mutably.
fn context_param(
    input: &PatType,
    by_ref: ContextRef,
    span: proc_macro2::Span,
    position: usize,
    rule: Rule,
    errors: &mut Errors,
) -> Option<ContextParam> {
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
            return Some(ContextParam {
                by_ref: matches!(by_ref, ContextRef::Shared),
                span,
            });
        }
    }
    None
}

/// An argument is named by a plain identifier (`mut` only in a handler,
/// which has a body); `None` (reported) otherwise.
fn arg_name(pat: &Pat, rule: Rule, errors: &mut Errors) -> Option<Ident> {
    match pat {
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
            errors.at(
                wild,
                "give this argument a name: it names the request field and the client's parameter",
            );
            None
        }
        pat => {
            errors.at(
                pat,
                "expected an identifier as the argument name, not a pattern; destructure it in the body instead",
            );
            None
        }
    }
}

/// The arguments fit in one serde tuple.
fn at_most_max_args(args: &[Arg], errors: &mut Errors) {
    if let Some(extra) = args.get(MAX_ARGS) {
        errors.at(
            &extra.ident,
            format!("a service method takes at most {MAX_ARGS} arguments; group them in a struct"),
        );
    }
}

/// The declared return type, `None` for `()`; checked, and refused on a
/// `notify` method.
fn output(sig: &Signature, notify: bool, errors: &mut Errors) -> Option<Type> {
    let ReturnType::Type(_, ty) = &sig.output else {
        return None;
    };
    if is_unit(ty) {
        return None;
    }
    check_type(ty, Position::Return, errors);
    notify_returns_nothing(ty, notify, errors);
    Some((**ty).clone())
}

/// A `notify` method declares no return value.
fn notify_returns_nothing(ty: &Type, notify: bool, errors: &mut Errors) {
    if notify && stream_item(ty).is_some() {
        errors.at(
            ty,
            "a `notify` method sends no reply, so it cannot return a stream; remove `notify` to stream to the caller",
        );
    } else if notify {
        errors.at(
            ty,
            "a `notify` method sends no reply, so it cannot return a value; remove the return type",
        );
    }
}

/// Splits a method's attributes into docs, cfgs, and everything to keep on the method.
fn sort_attrs(
    attrs: &[Attribute],
    krate: &Path,
) -> (Vec<Attribute>, Vec<Attribute>, Vec<Attribute>) {
    let kept = strip(attrs, Some(krate));
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
