//! One function per generated item, assembled in [`generate`]'s one list;
//! the server side lives in `server.rs`, the client in `client.rs`.
//!
//! Generated code names only paths under the runtime's path (`::sockets`, or
//! the service's `crate = "..."`), so the user's crate needs no other
//! dependency and may shadow any prelude name.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::Attribute;

use super::client::{client_impl, client_struct};
use super::descriptor::request_descriptor;
use super::server::{server_impl, server_struct, service_impl};
use crate::model::{Kind, Method, Service, Shape};

/// Everything `#[sockets::service]` emits for one service.
pub(super) fn generate(service: &Service) -> TokenStream {
    let generated = [
        request_enum(service),
        request_info(service),
        request_descriptor(service),
        request_impl(service),
        request_debug(service),
        response_enum(service),
        response_impl(service),
        response_debug(service),
        server_struct(service),
        server_impl(service),
        service_impl(service),
        client_struct(service),
        client_impl(service),
        type_checks(service),
    ];
    match &service.kind {
        Kind::Trait { .. } => {
            let definition = trait_definition(service);
            quote! {
                #definition
                #(#generated)*
            }
        }
        Kind::Module { attrs, items, .. } => {
            let vis = &service.vis;
            let ident = &service.ident;
            let (outer, inner): (Vec<_>, Vec<_>) = attrs
                .iter()
                .partition(|a| matches!(a.style, syn::AttrStyle::Outer));
            quote! {
                #(#outer)*
                #vis mod #ident {
                    #(#inner)*
                    #(#items)*
                    #(#generated)*
                }
            }
        }
    }
}

/// The user's trait, its methods rewritten to return `Send` futures so the
/// runtime can spawn them; implementors still write `async fn`.
fn trait_definition(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let Kind::Trait {
        attrs,
        supertraits,
        verbatim,
    } = &service.kind
    else {
        return TokenStream::new();
    };
    let vis = &service.vis;
    let ident = &service.ident;
    let methods = service.methods.iter().map(|m| {
        let attrs = &m.attrs;
        let ident = &m.ident;
        let inputs = &m.inputs;
        let output = output_type(m);
        // Spanned at the method, so lints on the rewritten signature point there.
        let fn_token = quote_spanned!(ident.span()=> fn);
        quote! {
            #(#attrs)*
            #fn_token #ident(#inputs) -> impl #krate::__private::Future<Output = #output> + #krate::__private::Send;
        }
    });
    quote! {
        #(#attrs)*
        #vis trait #ident: #(#supertraits +)* #krate::__private::Send + #krate::__private::Sync + 'static {
            #(#methods)*
            #(#verbatim)*
        }
    }
}

/// `enum CalculatorRequest { Add { a: i64, b: i64 }, Version, ... }`
fn request_enum(service: &Service) -> TokenStream {
    let vis = vis(service);
    let cfgs = &service.cfgs;
    let request = &service.names.request;
    let doc = format!(
        "A call to a method of {}, with its arguments: one variant per method. \
         `Debug` prints the variant only, never the arguments.",
        display_name(service)
    );
    let variants = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let docs = docs_or(&m.docs, &format!("Calls `{}`.", m.wire_name));
        let variant = &m.variant;
        if m.args.is_empty() {
            return quote!(#(#cfgs)* #docs #variant);
        }
        let fields = m.args.iter().map(|arg| {
            let (ident, ty) = (&arg.ident, &arg.ty);
            let doc = format!("The argument `{ident}`.");
            quote!(#[doc = #doc] #ident: #ty)
        });
        quote!(#(#cfgs)* #docs #variant { #(#fields),* })
    });
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #vis enum #request {
            #(#variants,)*
        }
    }
}

/// `CalculatorRequest::INFO`: the static description the runtime routes by.
fn request_info(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let request = &service.names.request;
    let name = &service.wire_name;
    let methods = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let (wire, open, notify) = (&m.wire_name, m.open, m.notify);
        let (stream, stream_in) = (m.stream_out.is_some(), m.stream_in.is_some());
        quote! {
            #(#cfgs)*
            #krate::service::MethodInfo {
                name: #wire,
                open: #open,
                notify: #notify,
                stream: #stream,
                stream_in: #stream_in,
            }
        }
    });
    quote! {
        #(#cfgs)*
        impl #request {
            /// The service's wire name and methods, as the runtime sees them.
            pub const INFO: #krate::service::ServiceInfo = #krate::service::ServiceInfo {
                name: #name,
                methods: &[#(#methods,)*],
            };
        }
    }
}

/// `impl ServiceRequest for CalculatorRequest`: wire names and the argument tuple.
fn request_impl(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let (request, response) = (&service.names.request, &service.names.response);
    let methods = service.methods.iter().map(|m| {
        let (cfgs, wire) = (&m.cfgs, &m.wire_name);
        let pattern = variant_wildcard(m);
        quote!(#(#cfgs)* #pattern => #wire,)
    });
    let notifies = service.methods.iter().map(|m| {
        let (cfgs, notify) = (&m.cfgs, m.notify);
        let pattern = variant_wildcard(m);
        quote!(#(#cfgs)* #pattern => #notify,)
    });
    let streams = service.methods.iter().map(|m| {
        let (cfgs, stream) = (&m.cfgs, m.stream_out.is_some() || m.stream_in.is_some());
        let pattern = variant_wildcard(m);
        quote!(#(#cfgs)* #pattern => #stream,)
    });
    let encode = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let pattern = variant_pattern(quote!(Self), m);
        // The pattern binds each argument by reference; a `Vec<u8>` goes as `bin`.
        let elements = m.args.iter().map(|a| {
            let ident = &a.ident;
            match a.shape {
                Shape::Bytes => quote!(#krate::__private::bin(#ident)),
                Shape::String | Shape::Other => quote!(#ident),
            }
        });
        let tuple = args_tuple(krate, elements.collect());
        let encode_args = at_method(m, quote!(#krate::__private::encode_args));
        quote! {
            #(#cfgs)*
            #pattern => #encode_args(&#tuple, out),
        }
    });
    let decode = service.methods.iter().map(|m| {
        let (cfgs, wire) = (&m.cfgs, &m.wire_name);
        let idents: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
        let construct = variant_pattern(quote!(Self), m);
        let decode_args = at_method(m, quote!(#krate::__private::decode_args));
        // A `Vec<u8>` arrives as `bin`: decoded as `Bin`, then unwrapped.
        let has_bytes = m.args.iter().any(|a| a.shape == Shape::Bytes);
        let types = m.args.iter().map(|a| match a.shape {
            Shape::Bytes => quote!(#krate::__private::Bin),
            Shape::String | Shape::Other => quote!(_),
        });
        let annotation = has_bytes.then(|| quote!(: (#(#types,)*)));
        let decode = match idents.as_slice() {
            [] => quote! {
                #krate::__private::decode_args::<#krate::__private::NoArgs>(method, args)?;
            },
            [one] => quote!(let (#one,) #annotation = #decode_args(method, args)?;),
            many => quote!(let (#(#many),*) #annotation = #decode_args(method, args)?;),
        };
        let unwrap = m.args.iter().filter(|a| a.shape == Shape::Bytes).map(|a| {
            let ident = &a.ident;
            quote!(let #ident = #krate::__private::from_bin(#ident);)
        });
        quote! {
            #(#cfgs)*
            #wire => {
                #decode
                #(#unwrap)*
                #krate::__private::Ok(#construct)
            }
        }
    });
    // A service whose every method had a mistake is generated empty, and an
    // empty enum is matched by value.
    let scrutinee = if service.methods.is_empty() {
        quote!(*self)
    } else {
        quote!(self)
    };
    quote! {
        #(#cfgs)*
        impl #krate::service::ServiceRequest for #request {
            type Response = #response;

            fn method(&self) -> &'static str {
                match #scrutinee {
                    #(#methods)*
                }
            }

            fn is_notify(&self) -> bool {
                match #scrutinee {
                    #(#notifies)*
                }
            }

            fn is_stream(&self) -> bool {
                match #scrutinee {
                    #(#streams)*
                }
            }

            fn encode_args(
                &self,
                out: &mut #krate::__private::Vec<u8>,
            ) -> #krate::__private::Result<(), #krate::error::CodecError> {
                match #scrutinee {
                    #(#encode)*
                }
            }

            fn decode(
                method: &str,
                args: &[u8],
            ) -> #krate::__private::Result<Self, #krate::service::DispatchError> {
                match method {
                    #(#decode)*
                    _ => #krate::__private::Err(#krate::__private::unknown_method(method)),
                }
            }
        }
    }
}

/// `enum CalculatorResponse { Add(i64), ... }`: what each method returned.
fn response_enum(service: &Service) -> TokenStream {
    let vis = vis(service);
    let cfgs = &service.cfgs;
    let response = &service.names.response;
    let doc = format!(
        "The reply to a call of {}: one variant per method, holding its return value. \
         `Debug` prints the variant only, never the value.",
        display_name(service)
    );
    let variants = service.methods.iter().map(|m| {
        let (cfgs, variant) = (&m.cfgs, &m.variant);
        let doc = format!("What `{}` returned.", m.wire_name);
        let output = output_type(m);
        quote!(#(#cfgs)* #[doc = #doc] #variant(#output))
    });
    // Only callers that match on replies (`Server::send_to`) read the
    // fields, so a private service in a binary must not warn about them.
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis enum #response {
            #(#variants,)*
        }
    }
}

/// `impl ServiceResponse for CalculatorResponse`.
fn response_impl(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let response = &service.names.response;
    let arms = service.methods.iter().map(|m| {
        let (cfgs, variant, wire) = (&m.cfgs, &m.variant, &m.wire_name);
        if m.stream_out.is_some() {
            return quote! {
                #(#cfgs)*
                #wire => #krate::__private::Err(#krate::__private::stream_reply(method)),
            };
        }
        let decode_reply = at_method(m, quote!(#krate::__private::decode_reply));
        // A `Vec<u8>` reply arrives as `bin`.
        let from_bin =
            (m.output_shape == Shape::Bytes).then(|| quote!(.map(#krate::__private::from_bin)));
        quote! {
            #(#cfgs)*
            #wire => #decode_reply(method, value) #from_bin .map(Self::#variant),
        }
    });
    quote! {
        #(#cfgs)*
        impl #krate::service::ServiceResponse for #response {
            fn decode(
                method: &str,
                value: &[u8],
            ) -> #krate::__private::Result<Self, #krate::Error> {
                match method {
                    #(#arms)*
                    _ => #krate::__private::Err(#krate::__private::unknown_reply(method)),
                }
            }
        }
    }
}

/// `impl Debug for CalculatorRequest`: the variant, never the arguments,
/// which need not be `Debug` and may hold secrets (`Add { .. }`, `Version`).
fn request_debug(service: &Service) -> TokenStream {
    let request = &service.names.request;
    let arms = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let pattern = variant_wildcard(m);
        let name = m.variant.to_string();
        let print = if m.args.is_empty() {
            quote!(f.write_str(#name))
        } else {
            quote!(f.debug_struct(#name).finish_non_exhaustive())
        };
        quote!(#(#cfgs)* #pattern => #print,)
    });
    debug_impl(service, request, arms)
}

/// `impl Debug for CalculatorResponse`: the variant, never the value (`Add(..)`).
fn response_debug(service: &Service) -> TokenStream {
    let response = &service.names.response;
    let arms = service.methods.iter().map(|m| {
        let (cfgs, variant) = (&m.cfgs, &m.variant);
        let name = variant.to_string();
        quote!(#(#cfgs)* Self::#variant(_) => f.debug_tuple(#name).finish_non_exhaustive(),)
    });
    debug_impl(service, response, arms)
}

fn debug_impl(
    service: &Service,
    ty: &syn::Ident,
    arms: impl Iterator<Item = TokenStream>,
) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    // An empty enum (every method had a mistake) is matched by value.
    let scrutinee = if service.methods.is_empty() {
        quote!(*self)
    } else {
        quote!(self)
    };
    quote! {
        #(#cfgs)*
        impl #krate::__private::Debug for #ty {
            fn fmt(
                &self,
                f: &mut #krate::__private::fmt::Formatter<'_>,
            ) -> #krate::__private::fmt::Result {
                match #scrutinee {
                    #(#arms)*
                }
            }
        }
    }
}

/// Hidden compile-time checks that every argument and return type can
/// travel, each at the type's own span so rustc points there.
fn type_checks(service: &Service) -> TokenStream {
    let cfgs = &service.cfgs;
    let checks = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let args = m.args.iter().map(|a| {
            let ty = &a.ty;
            let krate = krate_at(service, span_of(ty));
            quote_spanned!(span_of(ty)=> #krate::__private::assert_arg::<#ty>();)
        });
        let stream_in = m.stream_in.as_ref().map(|stream| {
            let item = &stream.item;
            let krate = krate_at(service, span_of(item));
            quote_spanned!(span_of(item)=> #krate::__private::assert_item::<#item>();)
        });
        let output = match (&m.stream_out, &m.output) {
            (Some(item), _) => {
                let krate = krate_at(service, span_of(item));
                Some(quote_spanned!(span_of(item)=> #krate::__private::assert_item::<#item>();))
            }
            (None, Some(ty)) => {
                let krate = krate_at(service, span_of(ty));
                Some(quote_spanned!(span_of(ty)=> #krate::__private::assert_reply::<#ty>();))
            }
            (None, None) => None,
        };
        if m.args.is_empty() && output.is_none() && stream_in.is_none() {
            return TokenStream::new();
        }
        quote! {
            #(#cfgs)*
            {
                #(#args)*
                #stream_in
                #output
            }
        }
    });
    quote! {
        #(#cfgs)*
        const _: () = {
            #(#checks)*
        };
    }
}

/// `#[sockets(window(...))]` as a `sockets::Window`, or `None`.
pub(super) fn window(krate: &syn::Path, m: &Method) -> TokenStream {
    match &m.window {
        Some((items, bytes)) => quote!(#krate::__private::window(#items, #bytes)),
        None => quote!(#krate::__private::None),
    }
}

/// `tokens` re-spanned at the method's name: where generated code needs a
/// type to be serde-serializable, rustc's error then points at the method
/// rather than at the attribute.
pub(super) fn at_method(m: &Method, tokens: TokenStream) -> TokenStream {
    let span = m.ident.span();
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

/// The runtime's path with every token at `span`, for `quote_spanned!`: a
/// path whose first tokens sat elsewhere would move rustc's error there.
pub(super) fn krate_at(service: &Service, span: Span) -> TokenStream {
    respan(service.krate.to_token_stream(), span)
}

/// `tokens` with every token, nested ones too, at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut token => {
                token.set_span(span);
                token
            }
        })
        .collect()
}

pub(super) fn span_of(ty: &syn::Type) -> Span {
    syn::spanned::Spanned::span(ty)
}

/// `Enum::Add { a, b }` (a pattern or an expression), or `Enum::Version`.
pub(super) fn variant_pattern(enum_path: TokenStream, m: &Method) -> TokenStream {
    let variant = &m.variant;
    if m.args.is_empty() {
        return quote!(#enum_path::#variant);
    }
    let idents = m.args.iter().map(|a| &a.ident);
    quote!(#enum_path::#variant { #(#idents),* })
}

/// `Self::Add { .. }` or `Self::Version`: the variant, ignoring its fields.
fn variant_wildcard(m: &Method) -> TokenStream {
    let variant = &m.variant;
    if m.args.is_empty() {
        quote!(Self::#variant)
    } else {
        quote!(Self::#variant { .. })
    }
}

/// `(a, b)`, `(a,)`, or the empty array for no arguments: always one
/// MessagePack array, one element per argument.
pub(super) fn args_tuple(krate: &syn::Path, elements: Vec<TokenStream>) -> TokenStream {
    match elements.as_slice() {
        [] => quote!(#krate::__private::NO_ARGS),
        [one] => quote!((#one,)),
        many => quote!((#(#many),*)),
    }
}

/// The declared return type, `()` if none.
pub(super) fn output_type(m: &Method) -> TokenStream {
    match &m.output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    }
}

/// The user's doc comments, or one generated line when there are none.
pub(super) fn docs_or(docs: &[Attribute], default: &str) -> TokenStream {
    if docs.is_empty() {
        quote!(#[doc = #default])
    } else {
        quote!(#(#docs)*)
    }
}

/// The visibility of generated items: the trait's, or `pub` inside a module
/// (whose own visibility then bounds them).
pub(super) fn vis(service: &Service) -> TokenStream {
    match service.kind {
        Kind::Trait { .. } => {
            let vis = &service.vis;
            quote!(#vis)
        }
        Kind::Module { .. } => quote!(pub),
    }
}

/// How generated docs name the service.
pub(super) fn display_name(service: &Service) -> String {
    match service.kind {
        Kind::Trait { .. } => format!("[`{}`]", service.ident),
        Kind::Module { .. } => format!("the `{}` service", service.wire_name),
    }
}
