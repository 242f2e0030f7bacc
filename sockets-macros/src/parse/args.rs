//! The arguments of `#[sockets::service(...)]`: `crate = "..."`, the path
//! generated code names the runtime by, for a crate that renames or
//! re-exports `sockets` (serde's `#[serde(crate = "...")]` is the model).

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit, Path, Token, parse_quote};

use crate::errors::Errors;

/// The runtime's path: the `crate = "..."` argument, or `::sockets`.
pub(crate) fn service_args(args: TokenStream, errors: &mut Errors) -> Path {
    let mut krate = None;
    let parser = syn::meta::parser(|meta| service_arg(&meta, &mut krate));
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    krate.unwrap_or_else(|| parse_quote!(::sockets))
}

/// One argument: `crate = "..."`, given once.
fn service_arg(meta: &ParseNestedMeta<'_>, krate: &mut Option<Path>) -> syn::Result<()> {
    if !meta.path.is_ident("crate") {
        let path = meta.path.to_token_stream().to_string().replace(' ', "");
        return Err(meta.error(format!(
            "unknown option `{path}`; expected `crate = \"...\"`"
        )));
    }
    if !meta.input.peek(Token![=]) {
        return Err(meta.error("expected `crate = \"...\"`: the path of the `sockets` crate"));
    }
    let path = crate_path(meta)?;
    if krate.is_some() {
        return Err(meta.error("duplicate option `crate`"));
    }
    *krate = Some(path);
    Ok(())
}

/// The value of `crate = "..."`: a string holding a path without generics.
/// The path's tokens are spanned at the string.
fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let value: Expr = meta.value()?.parse()?;
    let Expr::Lit(ExprLit {
        lit: Lit::Str(string),
        ..
    }) = &value
    else {
        let message = match &value {
            Expr::Path(path) => format!(
                "expected a string: write `crate = \"{}\"`",
                path.to_token_stream().to_string().replace(' ', "")
            ),
            _ => "expected a string holding a path, such as `crate = \"::sockets\"`".to_string(),
        };
        return Err(syn::Error::new_spanned(value, message));
    };
    string.parse_with(Path::parse_mod_style).map_err(|_| {
        syn::Error::new(
            string.span(),
            format!(
                "expected a path such as `::sockets`, found `{}`",
                string.value()
            ),
        )
    })
}
