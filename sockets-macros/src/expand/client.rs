//! The client side: typed calls through a `Peer`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::service::{args_tuple, at_method, display_name, docs_or, output_type, vis, window};
use crate::model::{Arg, Method, Service, Shape};

/// `struct CalculatorClient`: typed calls through a `Peer`.
pub(super) fn client_struct(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let vis = vis(service);
    let cfgs = &service.cfgs;
    let client = &service.names.client;
    let doc = format!(
        "Calls {} on the other side of a connection: one method per service method, \
         each returning `Result<T, sockets::Error>` where `T` is the declared return type.",
        display_name(service)
    );
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[derive(#krate::__private::Clone, #krate::__private::Debug)]
        #vis struct #client {
            peer: #krate::Peer,
            options: #krate::CallOptions,
        }
    }
}

/// The client's constructor, per-call options, and one method per service method.
pub(super) fn client_impl(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &service.cfgs;
    let (client, request) = (&service.names.client, &service.names.request);
    let methods = service.methods.iter().map(|m| client_method(krate, m));
    quote! {
        #(#cfgs)*
        impl #client {
            /// A client that calls through `peer` with default options.
            pub fn new(peer: #krate::Peer) -> Self {
                Self {
                    peer,
                    options: #krate::__private::Default::default(),
                }
            }

            /// A copy of this client that sends its calls with `options`.
            pub fn with_options(&self, options: #krate::CallOptions) -> Self {
                Self {
                    peer: #krate::__private::Clone::clone(&self.peer),
                    options,
                }
            }

            /// A copy of this client whose calls wait at most `timeout` for their reply.
            pub fn with_timeout(&self, timeout: #krate::__private::Duration) -> Self {
                self.with_options(#krate::CallOptions {
                    timeout: #krate::__private::Some(timeout),
                    ..self.options
                })
            }

            /// A copy of this client whose streams grant `window` (see
            /// `sockets::Window`); otherwise a streaming method's own window applies.
            pub fn with_window(&self, window: #krate::Window) -> Self {
                self.with_options(#krate::CallOptions {
                    window: #krate::__private::Some(window),
                    ..self.options
                })
            }

            /// A copy of this client whose streams re-open themselves after a
            /// reconnect and yield `sockets::Feed::Gap` where the gap was (see
            /// `sockets::CallOptions::resubscribe`); for streams of `Feed<T>`.
            pub fn with_resubscribe(&self) -> Self {
                self.with_options(#krate::CallOptions {
                    resubscribe: true,
                    ..self.options
                })
            }

            /// The peer this client calls.
            pub fn peer(&self) -> &#krate::Peer {
                &self.peer
            }

            /// The descriptor of the service this client calls, for
            /// `ClientBuilder::expect_services`: the server's must be compatible.
            pub fn descriptor() -> &'static #krate::descriptor::ServiceDescriptor {
                #request::descriptor()
            }

            #(#methods)*
        }

        #(#cfgs)*
        impl #krate::__private::From<#krate::Peer> for #client {
            fn from(peer: #krate::Peer) -> Self {
                Self::new(peer)
            }
        }
    }
}

/// `pub async fn add(&self, a: i64, b: i64) -> Result<i64, sockets::Error>`.
fn client_method(krate: &syn::Path, m: &Method) -> TokenStream {
    let (cfgs, ident, wire) = (&m.cfgs, &m.ident, &m.wire_name);
    let default_doc = if m.notify {
        format!("Sends `{wire}` as a notification: no reply; resolves once it is queued.")
    } else {
        format!("Calls `{wire}` on the peer.")
    };
    let docs = docs_or(&m.docs, &default_doc);
    let params = m.args.iter().map(|a| client_param(krate, a));
    let tuple = args_tuple(krate, m.args.iter().map(|a| client_arg(krate, a)).collect());
    // Through `__private`, which hands the `&'static str` wire name to the
    // peer's `Caller` borrowed (`Peer::call` takes any `&str` and copies it).
    // The whole call is spanned at the method, so rustc reports a return type
    // that cannot be decoded there.
    let span = ident.span();
    if let Some(stream) = &m.stream_in {
        let (items, items_ty) = (&stream.ident, &stream.ty);
        let window = window(krate, m);
        if let Some(item) = &m.stream_out {
            let default_doc = format!(
                "Opens `{wire}` on the peer: sends the items of `{items}` as the peer reads them, and returns the stream of the peer's items, ending when the peer's stream ends."
            );
            let docs = docs_or(&m.docs, &default_doc);
            let open = at_method(m, quote!(#krate::__private::open_duplex));
            return quote! {
                #(#cfgs)*
                #docs
                pub async fn #ident(&self, #(#params,)* #items: #items_ty) -> #krate::__private::Result<#krate::Stream<#item>, #krate::Error> {
                    #open(&self.peer, #wire, &#tuple, #items, self.options, #window).await
                }
            };
        }
        let default_doc = format!(
            "Calls `{wire}` on the peer: sends the items of `{items}` as the peer reads them, and returns its reply."
        );
        let docs = docs_or(&m.docs, &default_doc);
        let upload = at_method(m, quote!(#krate::__private::upload));
        let output = output_type(m);
        let from_bin =
            (m.output_shape == Shape::Bytes).then(|| quote!(.map(#krate::__private::from_bin)));
        return quote! {
            #(#cfgs)*
            #docs
            pub async fn #ident(&self, #(#params,)* #items: #items_ty) -> #krate::__private::Result<#output, #krate::Error> {
                #upload(&self.peer, #wire, &#tuple, #items, self.options).await #from_bin
            }
        };
    }
    if let Some(item) = &m.stream_out {
        let default_doc = format!(
            "Opens `{wire}` on the peer: a stream of its items, ending when the peer's stream ends."
        );
        let docs = docs_or(&m.docs, &default_doc);
        let window = window(krate, m);
        let open = at_method(m, quote!(#krate::__private::open_stream));
        return quote! {
            #(#cfgs)*
            #docs
            pub async fn #ident(&self, #(#params),*) -> #krate::__private::Result<#krate::Stream<#item>, #krate::Error> {
                #open(&self.peer, #wire, &#tuple, self.options, #window).await
            }
        };
    }
    let send = if m.notify {
        let notify = at_method(m, quote!(#krate::__private::notify));
        quote_spanned!(span=> #notify(&self.peer, #wire, &#tuple))
    } else {
        let call = at_method(m, quote!(#krate::__private::call));
        quote_spanned!(span=> #call(&self.peer, #wire, &#tuple, self.options))
    };
    if m.notify {
        quote! {
            #(#cfgs)*
            #docs
            pub async fn #ident(&self, #(#params),*) -> #krate::__private::Result<(), #krate::Error> {
                #send.await
            }
        }
    } else {
        let output = output_type(m);
        // A `Vec<u8>` reply arrives as `bin`.
        let from_bin =
            (m.output_shape == Shape::Bytes).then(|| quote!(.map(#krate::__private::from_bin)));
        quote! {
            #(#cfgs)*
            #docs
            pub async fn #ident(&self, #(#params),*) -> #krate::__private::Result<#output, #krate::Error> {
                #send.await #from_bin
            }
        }
    }
}

/// `a: i64`, or `name: impl Into<String>` for a `String`: `"ada"` and a
/// `String` both fit, and the conversion leaves nothing to infer.
fn client_param(krate: &syn::Path, arg: &Arg) -> TokenStream {
    let (ident, ty) = (&arg.ident, &arg.ty);
    match arg.shape {
        Shape::String => quote!(#ident: impl #krate::__private::Into<#ty>),
        Shape::Bytes | Shape::Other => quote!(#ident: #ty),
    }
}

/// The argument's element of the tuple the client sends: converted into a
/// `String`, borrowed as `bin` for a `Vec<u8>`, or as it is.
fn client_arg(krate: &syn::Path, arg: &Arg) -> TokenStream {
    let (ident, ty) = (&arg.ident, &arg.ty);
    match arg.shape {
        Shape::String => quote!(#krate::__private::Into::<#ty>::into(#ident)),
        Shape::Bytes => quote!(#krate::__private::bin(&#ident)),
        Shape::Other => quote!(#ident),
    }
}
