//! The service's descriptor: `CalculatorRequest::descriptor()`, traced from
//! the argument and return types on first use (see `sockets::descriptor`).

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::{Method, Service, Shape};

/// `impl CalculatorRequest { pub fn descriptor() -> &'static ServiceDescriptor }`.
pub(super) fn request_descriptor(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let request = &service.names.request;
    let (name, doc) = (&service.wire_name, &service.doc);
    let methods = service.methods.iter().map(|m| {
        let cfgs = &m.cfgs;
        let method = describe_method(krate, m);
        quote!(#(#cfgs)* methods.push(#method);)
    });
    quote! {
        #(#cfgs)*
        impl #request {
            /// The service's descriptor: its wire name, docs, and each method's
            /// kind, parameters, return and error types as they travel (see
            /// `sockets::descriptor`). Traced from the types on first use, then shared.
            pub fn descriptor() -> &'static #krate::descriptor::ServiceDescriptor {
                static DESCRIPTOR: #krate::__private::OnceLock<#krate::descriptor::ServiceDescriptor> =
                    #krate::__private::OnceLock::new();
                DESCRIPTOR.get_or_init(|| {
                    #[allow(unused_imports)]
                    use #krate::__private::{TraceOther as _, TraceSerde as _};
                    let mut methods = #krate::__private::Vec::new();
                    #(#methods)*
                    #krate::__private::describe_service(#name, #doc, methods)
                })
            }
        }
    }
}

/// `describe_method("calculator.add", notify, open, doc, params, returns)`.
fn describe_method(krate: &syn::Path, m: &Method) -> TokenStream {
    let (wire, notify, open, doc) = (&m.wire_name, m.notify, m.open, &m.doc);
    let params = m.args.iter().map(|a| {
        let name = a.ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
        let trace = trace(krate, &a.ty, a.shape);
        quote!((#name, #trace))
    });
    let returns = if m.notify {
        quote!(#krate::__private::None)
    } else {
        let trace = match &m.output {
            Some(ty) => trace(krate, ty, m.output_shape),
            None => trace(krate, &syn::parse_quote!(()), Shape::Other),
        };
        quote!(#krate::__private::Some(#trace))
    };
    if m.stream_out.is_some() || m.stream_in.is_some() {
        let item = |item: Option<&syn::Type>| match item {
            Some(item) => {
                let trace = trace(krate, item, Shape::Other);
                quote!(#krate::__private::Some(#trace))
            }
            None => quote!(#krate::__private::None),
        };
        let stream_in = item(m.stream_in.as_ref().map(|s| &s.item));
        let stream_out = item(m.stream_out.as_ref());
        // A method that returns a stream has no `returns`.
        let returns = if m.stream_out.is_some() {
            quote!(#krate::__private::None)
        } else {
            returns
        };
        return quote! {
            #krate::__private::describe_stream_method(
                #wire,
                #open,
                #doc,
                #krate::__private::From::from([#(#params),*]),
                #stream_in,
                #returns,
                #stream_out,
            )
        };
    }
    quote! {
        #krate::__private::describe_method(
            #wire,
            #notify,
            #open,
            #doc,
            #krate::__private::From::from([#(#params),*]),
            #returns,
        )
    }
}

/// The traced type of `ty` (a `Vec<u8>` as the `bin` it travels as). A type
/// that is not serde's falls back to `any` here, so the error about it is
/// reported once, by the hidden type checks.
fn trace(krate: &syn::Path, ty: &syn::Type, shape: Shape) -> TokenStream {
    let ty = match shape {
        Shape::Bytes => quote!(#krate::__private::Bin),
        Shape::String | Shape::Other => quote!(#ty),
    };
    quote!((&#krate::__private::Probe::<#ty>::new()).trace_type())
}
