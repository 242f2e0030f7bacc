//! The pipeline: parse → check → generate. When the item cannot be a service
//! at all, the user's item is re-emitted as written (minus our attributes)
//! beside every error, so one mistake does not cascade into others and IDEs
//! keep working. When only some methods have mistakes, the service is still
//! generated from the others.

mod handler;
mod service;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Item, TraitItem};

use crate::errors::{self, Errors};
use crate::{check, parse};

/// `#[sockets::service]`.
pub(crate) fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    errors::collect(|errors| {
        if !args.is_empty() {
            errors.at(&args, "`#[sockets::service]` takes no arguments");
        }
        let item = match syn::parse2::<Item>(item.clone()) {
            Ok(item) => item,
            Err(error) => {
                errors.push(error);
                return item;
            }
        };
        match parse::service(&item, errors) {
            Some(mut model) => {
                check::service(&mut model, errors);
                service::generate(&model)
            }
            None => fallback(item),
        }
    })
}

/// `#[sockets::handler]` outside a `#[sockets::service] mod` (inside one, the
/// service macro consumes the marker).
pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    errors::collect(|errors: &mut Errors| handler::standalone(&args, item, errors))
}

/// The item as written, minus the attributes only our macros understand.
fn fallback(mut item: Item) -> TokenStream {
    match &mut item {
        Item::Trait(t) => {
            t.attrs = parse::strip(&t.attrs, false);
            for inner in &mut t.items {
                if let TraitItem::Fn(f) = inner {
                    f.attrs = parse::strip(&f.attrs, false);
                }
            }
        }
        Item::Mod(m) => {
            m.attrs = parse::strip(&m.attrs, false);
            for inner in m.content.iter_mut().flat_map(|(_, items)| items) {
                if let Item::Fn(f) = inner {
                    f.attrs = parse::strip(&f.attrs, true);
                }
            }
        }
        _ => {}
    }
    item.into_token_stream()
}
