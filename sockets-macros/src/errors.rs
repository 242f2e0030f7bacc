//! Error collection: every mistake in an item is reported in one compile.
//!
//! An [`Errors`] exists only inside [`collect`], which appends whatever was
//! pushed to the generated tokens, so no error can be dropped by forgetting
//! to check for it.

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far in one macro invocation.
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    /// Records an error at the span of `tokens`.
    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.0.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error `syn` produced.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.0.push(error);
    }

    /// How many errors were reported so far.
    pub(crate) fn count(&self) -> usize {
        self.0.len()
    }
}

/// Runs `expand` with a fresh collector and appends every reported error
/// (as `compile_error!`s at their spans) to what it generated.
pub(crate) fn collect(expand: impl FnOnce(&mut Errors) -> TokenStream) -> TokenStream {
    let mut errors = Errors(Vec::new());
    let mut tokens = expand(&mut errors);
    for error in errors.0 {
        tokens.extend(error.to_compile_error());
    }
    tokens
}
