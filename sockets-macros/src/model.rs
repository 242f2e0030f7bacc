//! The validated model the generators read: one [`Service`] holding one
//! [`Method`] per method. It keeps the user's tokens (identifiers, types,
//! doc and `cfg` attributes) so generated code reports errors at their
//! spans; no `#[sockets(...)]` attribute is left to interpret.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Path, Type, TypeParamBound, Visibility};

/// A service: a trait of methods or an inline module of handler functions.
pub(crate) struct Service {
    /// Where the methods live, and what to emit for the user's own item.
    pub kind: Kind,
    /// The trait's or the module's visibility, given to the generated items
    /// of a trait service (a module's items are `pub` inside the module).
    pub vis: Visibility,
    /// The trait's or the module's identifier.
    pub ident: Ident,
    /// The path generated code names the runtime by: `::sockets`, or the
    /// `crate = "..."` argument.
    pub krate: Path,
    /// The wire name: the prefix of every method's wire name.
    pub wire_name: String,
    /// The doc comment's text, for the descriptor.
    pub doc: String,
    /// The generated items' names.
    pub names: Names,
    /// The `#[cfg]`s on the trait, forwarded to every generated item (none for
    /// a module, whose own `#[cfg]`s cover what is generated inside it).
    pub cfgs: Vec<Attribute>,
    /// The methods, in declaration order.
    pub methods: Vec<Method>,
}

/// What the service was written as.
pub(crate) enum Kind {
    /// A trait: methods take `&self`; the trait is re-emitted with `Send` futures.
    Trait {
        /// The trait's attributes, minus ours.
        attrs: Vec<Attribute>,
        /// The supertraits as written; `Send + Sync + 'static` are added.
        supertraits: Vec<TypeParamBound>,
        /// Items that are not valid methods, re-emitted as written (minus our attributes).
        verbatim: Vec<TokenStream>,
    },
    /// An inline module: methods are its `#[handler]` functions.
    Module {
        /// The module's attributes, minus ours.
        attrs: Vec<Attribute>,
        /// The module's items, minus our attributes, re-emitted as written.
        items: Vec<TokenStream>,
        /// The names the module declares in the type namespace, to check
        /// against the generated ones.
        declared: Vec<Ident>,
    },
}

/// The names of the generated items.
pub(crate) struct Names {
    /// `CalculatorRequest`.
    pub request: Ident,
    /// `CalculatorResponse`.
    pub response: Ident,
    /// `CalculatorServer`.
    pub server: Ident,
    /// `CalculatorClient`.
    pub client: Ident,
}

/// One method of a service.
pub(crate) struct Method {
    /// The method's identifier as written.
    pub ident: Ident,
    /// The request and response variant: the identifier in UpperCamelCase.
    pub variant: Ident,
    /// `service.method`.
    pub wire_name: String,
    /// Doc comments, forwarded to the request variant and the client method.
    pub docs: Vec<Attribute>,
    /// The doc comment's text, for the descriptor.
    pub doc: String,
    /// `#[cfg]`s, forwarded to everything generated for this method.
    pub cfgs: Vec<Attribute>,
    /// Attributes to keep on the method itself (docs, cfgs and any others, minus ours).
    pub attrs: Vec<Attribute>,
    /// Guests may call it.
    pub open: bool,
    /// Fire-and-forget.
    pub notify: bool,
    /// `#[sockets(validate)]`: the decoded arguments are validated before the handler runs.
    pub validate: bool,
    /// `#[sockets(guard = path)]`: checked before the arguments are decoded.
    pub guard: Option<Path>,
    /// The call-context parameter, if the handler takes one.
    pub context: Option<ContextParam>,
    /// The parameters that travel, in order.
    pub args: Vec<Arg>,
    /// The declared return type; `None` for `()`.
    pub output: Option<Type>,
    /// What the return type is spelled as: `Bytes` travels as `bin`.
    pub output_shape: Shape,
    /// For a method returning `sockets::Stream<T>`: `T`, the item type.
    pub stream_out: Option<Type>,
    /// For a method whose last parameter is a `sockets::Stream<T>`: that
    /// parameter, which does not travel in the arguments.
    pub stream_in: Option<StreamParam>,
    /// `#[sockets(window(items = N, bytes = M))]`: the stream's default window.
    pub window: Option<(syn::LitInt, syn::LitInt)>,
    /// The parameters as written, receiver included (trait methods re-emit them).
    pub inputs: TokenStream,
    /// The whole item as written (minus our attributes), for when a later
    /// check drops the method from generation but the item must stay.
    pub original: TokenStream,
}

/// The handler's call-context parameter.
pub(crate) struct ContextParam {
    /// `&Context` (a borrow of the call's context) or `Context` (owned).
    pub by_ref: bool,
    /// The `Context` in the parameter's type, for errors about it.
    pub span: Span,
}

/// The stream parameter of a method that takes one: the items the caller sends.
pub(crate) struct StreamParam {
    /// Its name: a parameter of the handler and of the client method.
    pub ident: Ident,
    /// Its type as written, `sockets::Stream<T>`.
    pub ty: Type,
    /// `T`, the item type.
    pub item: Type,
}

/// A parameter that travels on the wire.
pub(crate) struct Arg {
    /// Its name: a field of the request variant and a parameter of the client method.
    pub ident: Ident,
    /// Its type, as written.
    pub ty: Type,
    /// What its type is spelled as, where that changes the generated code.
    pub shape: Shape,
}

/// A parameter's or return type's spelling, where it changes the generated
/// code. Decided from the tokens alone: an alias of `String` or `Vec<u8>`,
/// or either nested in another type, is `Other`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `String`, `std::string::String` or `::std::string::String`: the
    /// client method takes `impl Into<String>`.
    String,
    /// `Vec<u8>`, `std::vec::Vec<u8>` or `::std::vec::Vec<u8>`: travels as
    /// MessagePack `bin` (through `serde_bytes`), not as an array of integers.
    Bytes,
    /// Any other type, taken and encoded as written.
    Other,
}
