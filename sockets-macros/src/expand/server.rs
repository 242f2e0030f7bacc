//! The server side: the struct the runtime serves and its `Service` impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::service::{krate_at, span_of, variant_pattern, vis, window};
use crate::model::{Kind, Service, Shape};

/// `struct CalculatorServer<T>` wrapping an implementation, or a unit
/// `struct EchoServer` for a module of functions.
pub(super) fn server_struct(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let vis = vis(service);
    let cfgs = &service.cfgs;
    let server = &service.names.server;
    let ident = &service.ident;
    match service.kind {
        Kind::Trait { .. } => {
            let doc = format!(
                "Serves an implementation of [`{ident}`]: register it with a server or client as a service."
            );
            quote! {
                #(#cfgs)*
                #[doc = #doc]
                #[derive(#krate::__private::Clone, #krate::__private::Debug)]
                #vis struct #server<T> {
                    inner: T,
                }
            }
        }
        Kind::Module { .. } => {
            let doc = format!(
                "Serves the handlers of the `{}` service: register it with a server or client as a service.",
                service.wire_name
            );
            quote! {
                #(#cfgs)*
                #[doc = #doc]
                #[derive(
                    #krate::__private::Clone,
                    #krate::__private::Copy,
                    #krate::__private::Debug,
                    #krate::__private::Default,
                )]
                #vis struct #server;
            }
        }
    }
}

/// `CalculatorServer::new`, `inner`, `into_inner` (a module's server has nothing to wrap).
pub(super) fn server_impl(service: &Service) -> TokenStream {
    let Kind::Trait { .. } = service.kind else {
        return TokenStream::new();
    };
    let cfgs = &service.cfgs;
    let (server, ident) = (&service.names.server, &service.ident);
    quote! {
        #(#cfgs)*
        impl<T: #ident> #server<T> {
            /// Wraps `inner` to serve it.
            pub fn new(inner: T) -> Self {
                Self { inner }
            }

            /// The implementation being served.
            pub fn inner(&self) -> &T {
                &self.inner
            }

            /// Unwraps the implementation.
            pub fn into_inner(self) -> T {
                self.inner
            }
        }
    }
}

/// `impl Service for CalculatorServer<T>`: decode the request, then run the handler.
pub(super) fn service_impl(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let request = &service.names.request;
    let uses_context = service
        .methods
        .iter()
        .any(|m| m.context.is_some() || m.guard.is_some() || m.stream_in.is_some());
    // Hygienic: a user argument named `cx` cannot capture it.
    let cx = Ident::new(if uses_context { "cx" } else { "_cx" }, Span::mixed_site());
    let arm = |m: &crate::model::Method, streaming: bool| {
        let (cfgs, method) = (&m.cfgs, &m.ident);
        if streaming != m.stream_out.is_some() {
            // Served by the other entry point; the runtime routes by `MethodInfo::stream`.
            let variant = &m.variant;
            return quote! {
                #(#cfgs)*
                #request::#variant { .. } => #krate::__private::Err(#krate::__private::unknown_method(method)),
            };
        }
        let mut idents: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
        // The stream the caller sends: the handler's last argument, opened
        // by the runtime and taken from the context before the handler runs.
        let incoming = m.stream_in.as_ref().map(|stream| {
            let (ident, item) = (&stream.ident, &stream.item);
            idents.push(ident);
            let window = window(&service.krate, m);
            let krate = krate_at(service, span_of(&stream.ty));
            quote_spanned! {span_of(&stream.ty)=>
                let #ident = #krate::__private::incoming::<#item>(&#cx, method, #window)?;
            }
        });
        let context = m.context.as_ref().map(|c| {
            // Through `CallContext`, so a type merely named `Context` is
            // reported at that type.
            let krate = krate_at(service, c.span);
            if c.by_ref {
                quote_spanned!(c.span=> #krate::__private::CallContext::by_ref(&#cx),)
            } else {
                quote_spanned!(c.span=> #krate::__private::CallContext::owned(#cx),)
            }
        });
        let pattern = variant_pattern(quote!(#request), m);
        let call = match service.kind {
            Kind::Trait { .. } => {
                quote_spanned!(method.span()=> self.inner.#method(#context #(#idents),*))
            }
            // `self::`, so an argument named like its handler cannot shadow it.
            Kind::Module { .. } => {
                quote_spanned!(method.span()=> self::#method(#context #(#idents),*))
            }
        };
        // Spanned at the method: a handler whose future is not `Send` is
        // reported there.
        let krate = krate_at(service, method.span());
        // A `Vec<u8>` return value is sent as `bin`.
        let reply = match m.output_shape {
            Shape::Bytes => quote_spanned!(method.span()=> #krate::__private::to_bin(#call.await)),
            Shape::String | Shape::Other => quote_spanned!(method.span()=> #call.await),
        };
        let handler = if streaming {
            quote_spanned! {method.span()=>
                #krate::__private::stream_handler(async move { #reply })
            }
        } else {
            quote_spanned! {method.span()=>
                #krate::__private::handler(async move { #reply })
            }
        };
        // `#[sockets(validate)]`: every argument, every field error reported.
        let validate = m.validate.then(|| {
            let checks = m.args.iter().map(|a| {
                let (ident, ty) = (&a.ident, &a.ty);
                let name = ident.to_string();
                let krate = krate_at(service, ty.span());
                quote_spanned! {ty.span()=>
                    #krate::__private::Invalid::check(&mut invalid, #name, &#ident);
                }
            });
            quote! {
                let mut invalid = #krate::__private::Invalid::default();
                #(#checks)*
                invalid.finish()?;
            }
        });
        quote! {
            #(#cfgs)*
            #pattern => {
                #validate
                #incoming
                #krate::__private::Ok(#handler)
            }
        }
    };
    let arms: Vec<_> = service.methods.iter().map(|m| arm(m, false)).collect();
    let stream_arms: Vec<_> = service.methods.iter().map(|m| arm(m, true)).collect();
    let any_stream = service.methods.iter().any(|m| m.stream_out.is_some());
    // `#[sockets(guard = path)]`: before the arguments are decoded.
    let guarded: Vec<_> = service
        .methods
        .iter()
        .filter_map(|m| {
            let path = m.guard.as_ref()?;
            let (cfgs, wire) = (&m.cfgs, &m.wire_name);
            // Spanned at the path: a guard of the wrong type is reported there.
            let krate = krate_at(service, path.span());
            Some(quote_spanned! {path.span()=>
                #(#cfgs)*
                #wire => #krate::__private::guard(&#cx, method, #path)?,
            })
        })
        .collect();
    let guards = (!guarded.is_empty()).then(|| {
        quote! {
            match method {
                #(#guarded)*
                _ => {}
            }
        }
    });
    let (impl_head, self_name, allow) = match service.kind {
        Kind::Trait { .. } => {
            let (server, ident) = (&service.names.server, &service.ident);
            (quote!(impl<T: #ident>), quote!(#server<T>), None)
        }
        Kind::Module { .. } => {
            let server = &service.names.server;
            // `self::handler` is needed only when an argument shadows the handler.
            let allow = quote!(#[allow(unused_qualifications)]);
            (quote!(impl), quote!(#server), Some(allow))
        }
    };
    let dispatch_stream = any_stream.then(|| {
        quote! {
            #allow
            fn dispatch_stream(
                self: #krate::__private::Arc<Self>,
                #cx: #krate::Context,
                method: &str,
                args: &[u8],
            ) -> #krate::__private::Result<
                #krate::service::StreamHandlerFuture,
                #krate::service::DispatchError,
            > {
                #guards
                let request = <#request as #krate::service::ServiceRequest>::decode(method, args)?;
                match request {
                    #(#stream_arms)*
                }
            }
        }
    });
    quote! {
        #(#cfgs)*
        #impl_head #krate::Service for #self_name {
            fn info(&self) -> &'static #krate::service::ServiceInfo {
                &#request::INFO
            }

            fn descriptor(&self) -> #krate::__private::Option<&'static #krate::descriptor::ServiceDescriptor> {
                #krate::__private::Some(#request::descriptor())
            }

            #allow
            fn dispatch(
                self: #krate::__private::Arc<Self>,
                #cx: #krate::Context,
                method: &str,
                args: &[u8],
            ) -> #krate::__private::Result<
                #krate::service::HandlerFuture,
                #krate::service::DispatchError,
            > {
                let _ = &#cx;
                #guards
                let request = <#request as #krate::service::ServiceRequest>::decode(method, args)?;
                match request {
                    #(#arms)*
                }
            }

            #dispatch_stream
        }
    }
}
