//! Service descriptors: what a service offers, in a form that needs no Rust
//! to read. `#[sockets::service]` generates one per service
//! (`CalculatorRequest::descriptor()`, `CalculatorClient::descriptor()`); a
//! server or client answers the reserved method `sockets.describe` with the
//! [`Document`] of every service it serves; `sockets describe` prints it; and
//! a client can compare the server's with its own at connect
//! ([`ClientBuilder::expect_services`](crate::ClientBuilder::expect_services)).
//!
//! The JSON form is specified in `docs/DESCRIPTOR.md`; on the wire the same
//! document travels as one MessagePack value (maps with the same keys).
//!
//! ```text
//! Document ─ version: 1
//!          └ services ─ name, doc, hash
//!                       └ methods ─ name ("service.method"), kind, open, doc, hash
//!                                   ├ params ─ name, type
//!                                   ├ returns (absent for notify)
//!                                   └ error (a declared `Result`'s `Err`)
//! ```
//!
//! # Types are traced, not declared
//!
//! A [`Type`] is found by running the type's own `Deserialize` against a
//! recording deserializer ([`trace`]): what serde asks for (a struct with these
//! fields, an enum with these variants, a sequence of ...) is what travels.
//! Nothing is asked of the user's types beyond the `Deserialize` they already
//! have, and serde attributes (`rename`, `rename_all`, `skip`, `with =
//! "serde_bytes"`) are seen as they act. What tracing cannot see, it says:
//!
//! - Types whose `Deserialize` asks the format what comes next
//!   (`deserialize_any`): untagged, internally and adjacently tagged enums,
//!   `#[serde(flatten)]`, dynamic values such as `serde_json::Value`, are
//!   [`Type::Any`], with a note. Their values still travel; a descriptor just
//!   cannot say their shape.
//! - Types whose `Deserialize` rejects the tracer's sample values (zero or one,
//!   the empty string, empty bytes), such as a validated string newtype, are
//!   `Any` too.
//! - `#[serde(default)]` and `deny_unknown_fields` are invisible: every field
//!   is listed, none is marked optional (an `Option` field may be absent on
//!   the wire, as serde allows).
//! - Container names are serde's names without generic arguments (`Page`
//!   for `Page<User>`); they are documentation, never part of the hash.

mod canon;
mod compat;
mod render;
mod trace;

use serde::{Deserialize, Serialize};

pub use compat::{Difference, Incompatible, compare};
pub use trace::trace;

/// The descriptor format's version: [`Document::version`].
pub const VERSION: u32 = 1;

/// The reserved method that answers with a [`Document`].
pub const DESCRIBE_METHOD: &str = "sockets.describe";

/// What one side of a connection serves: the answer to `sockets.describe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The format's version, [`VERSION`]; a reader refuses versions it does not know.
    pub version: u32,
    /// The services, by name.
    pub services: Vec<ServiceDescriptor>,
}

impl Document {
    /// The document of `services`, sorted by name.
    pub fn new(services: impl IntoIterator<Item = ServiceDescriptor>) -> Self {
        let mut services: Vec<_> = services.into_iter().collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            version: VERSION,
            services,
        }
    }

    /// The service named `name`, if the document has it.
    pub fn service(&self, name: &str) -> Option<&ServiceDescriptor> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The method with the wire name `name` (`service.method`), with its service.
    pub fn method(&self, name: &str) -> Option<(&ServiceDescriptor, &MethodDescriptor)> {
        let (service, _) = name.rsplit_once('.')?;
        let service = self.service(service)?;
        Some((service, service.method(name)?))
    }
}

/// One service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDescriptor {
    /// The wire name, the prefix of its methods' names (`calculator`).
    pub name: String,
    /// The doc comment of the trait or module, without the `///`; may be empty.
    #[serde(default)]
    pub doc: String,
    /// `sha256:` and the hex SHA-256 of the service's signatures (see
    /// [`ServiceDescriptor::hash`] and `docs/DESCRIPTOR.md`): equal hashes,
    /// identical wire signatures.
    pub hash: String,
    /// The methods, in declaration order.
    pub methods: Vec<MethodDescriptor>,
}

impl ServiceDescriptor {
    /// A service descriptor, its own and its methods' hashes computed.
    pub fn new(
        name: impl Into<String>,
        doc: impl Into<String>,
        methods: Vec<MethodDescriptor>,
    ) -> Self {
        let mut methods = methods;
        for method in &mut methods {
            method.hash = canon::hash(&canon::method(method));
        }
        let mut service = Self {
            name: name.into(),
            doc: doc.into(),
            hash: String::new(),
            methods,
        };
        service.hash = canon::service_hash(&service);
        service
    }

    /// The method with the wire name `name` (`service.method`).
    pub fn method(&self, name: &str) -> Option<&MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// One method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDescriptor {
    /// The wire name, `service.method`.
    pub name: String,
    /// Called or notified.
    pub kind: MethodKind,
    /// Guest sessions may call it (`#[sockets(open)]`).
    pub open: bool,
    /// The doc comment, without the `///`; may be empty.
    #[serde(default)]
    pub doc: String,
    /// The parameters that travel (not the call context), in order: the
    /// arguments are one MessagePack array, one element per parameter.
    pub params: Vec<Field>,
    /// What a call returns: for a method declared `-> Result<T, E>`, `T`
    /// (the reply is then `{"Ok": t}` or `{"Err": e}`); `unit` for none.
    /// Absent for a notification method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<Type>,
    /// For a method declared `-> Result<T, E>`, `E`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Type>,
    /// For a `server_stream` method (declared `-> sockets::Stream<T>`), `T`:
    /// the type of each item the callee sends. `returns` is then absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_out: Option<Type>,
    /// For a `client_stream` or `bidi_stream` method (one that takes a
    /// `sockets::Stream<T>` as its last parameter), `T`: the type of each
    /// item the caller sends. That parameter is not in `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_in: Option<Type>,
    /// `sha256:` and the hex SHA-256 of the method's canonical signature.
    pub hash: String,
}

impl MethodDescriptor {
    /// A method descriptor whose `returns` is split into `returns` and
    /// `error` when it is serde's `Result` (an enum named `Result` with the
    /// newtype variants `Ok` and `Err`: on the wire `{"Ok": t}` or `{"Err": e}`).
    /// The hash is filled in by [`ServiceDescriptor::new`].
    pub fn new(
        name: impl Into<String>,
        kind: MethodKind,
        open: bool,
        doc: impl Into<String>,
        params: Vec<Field>,
        returns: Option<Type>,
    ) -> Self {
        let (returns, error) = match returns {
            Some(returns) => match split_result(returns) {
                Ok((ok, err)) => (Some(ok), Some(err)),
                Err(returns) => (Some(returns), None),
            },
            None => (None, None),
        };
        Self {
            name: name.into(),
            kind,
            open,
            doc: doc.into(),
            params,
            returns,
            error,
            stream_out: None,
            stream_in: None,
            hash: String::new(),
        }
    }

    /// This descriptor with `item` as the type of the items it streams to
    /// its caller ([`MethodDescriptor::stream_out`]).
    pub fn with_stream_out(mut self, item: Type) -> Self {
        self.stream_out = Some(item);
        self
    }

    /// This descriptor with `item` as the type of the items its caller
    /// streams to it ([`MethodDescriptor::stream_in`]).
    pub fn with_stream_in(mut self, item: Type) -> Self {
        self.stream_in = Some(item);
        self
    }

    /// The method's name without its service prefix (`add` for `calculator.add`).
    pub fn short_name(&self) -> &str {
        self.name.rsplit_once('.').map_or(&self.name, |(_, m)| m)
    }

    /// The method's signature as people read it:
    /// `calculator.divide(a: i64, b: i64) -> i64 ! DivideError`.
    pub fn signature(&self) -> String {
        render::signature(self)
    }
}

/// `Ok(T, E)` when `ty` is serde's `Result<T, E>`; `ty` back otherwise.
fn split_result(ty: Type) -> Result<(Type, Type), Type> {
    match ty {
        Type::Enum { name, variants }
            if name == "Result"
                && matches!(
                    variants.as_slice(),
                    [Variant::Newtype { name: ok, .. }, Variant::Newtype { name: err, .. }]
                        if ok == "Ok" && err == "Err"
                ) =>
        {
            let mut variants = variants.into_iter();
            match (variants.next(), variants.next()) {
                (Some(Variant::Newtype { of: ok, .. }), Some(Variant::Newtype { of: err, .. })) => {
                    Ok((ok, err))
                }
                _ => unreachable!("matched above"),
            }
        }
        other => Err(other),
    }
}

/// How a method is invoked. A kind this version does not know reads as
/// [`MethodKind::Other`], which is compatible with nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MethodKind {
    /// A call: one reply.
    Call,
    /// A notification: no reply (`#[sockets(notify)]`).
    Notify,
    /// A call answered with a stream of items (`-> sockets::Stream<T>`,
    /// docs/PROTOCOL.md §9.7); the item type is `stream_out`.
    ServerStream,
    /// A call that takes a stream of items from its caller and replies
    /// once (a last parameter `sockets::Stream<T>`); the item type is
    /// `stream_in`.
    ClientStream,
    /// A call that takes a stream of items and answers with one; the item
    /// types are `stream_in` and `stream_out`.
    BidiStream,
    /// A kind from a newer version.
    #[serde(other)]
    Other,
}

/// A named value: a parameter, or a field of a struct.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The name: a parameter's name (it does not travel: arguments are
    /// positional), or a field's key on the wire.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: Type,
}

impl Field {
    /// A field or parameter.
    pub fn new(name: impl Into<String>, ty: Type) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }
}

/// A type, described by what travels on the wire (MessagePack, as the
/// runtime's codec writes it). The JSON form is tagged by `"type"`:
/// `{"type": "i64"}`, `{"type": "seq", "of": {"type": "string"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Type {
    /// `true` or `false`.
    Bool,
    /// An integer from -2^7 to 2^7-1; any MessagePack integer of that value.
    I8,
    /// An integer from -2^15 to 2^15-1.
    I16,
    /// An integer from -2^31 to 2^31-1.
    I32,
    /// An integer from -2^63 to 2^63-1.
    I64,
    /// A 128-bit integer: a MessagePack integer when it fits in 64 bits,
    /// else `bin` of 16 big-endian bytes.
    I128,
    /// An integer from 0 to 2^8-1.
    U8,
    /// An integer from 0 to 2^16-1.
    U16,
    /// An integer from 0 to 2^32-1.
    U32,
    /// An integer from 0 to 2^64-1.
    U64,
    /// As [`Type::I128`], unsigned.
    U128,
    /// A 32-bit float.
    F32,
    /// A 64-bit float.
    F64,
    /// A string of one character.
    Char,
    /// A UTF-8 string.
    String,
    /// MessagePack `bin`.
    Bytes,
    /// `nil` (Rust's `()`).
    Unit,
    /// `nil` for none, else the value.
    Option {
        /// The value's type.
        of: Box<Type>,
    },
    /// An array of any length.
    Seq {
        /// The elements' type.
        of: Box<Type>,
    },
    /// An array of exactly these elements: a Rust tuple, array, tuple
    /// struct (named), or unit struct (named, no items).
    Tuple {
        /// The struct's name, for a tuple or unit struct.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The elements' types, in order.
        items: Vec<Type>,
    },
    /// A map.
    Map {
        /// The keys' type.
        key: Box<Type>,
        /// The values' type.
        value: Box<Type>,
    },
    /// A newtype struct: on the wire, exactly its inner value.
    Newtype {
        /// The struct's name.
        name: String,
        /// The inner value's type.
        of: Box<Type>,
    },
    /// A struct: a map from field names to values.
    Struct {
        /// The struct's name.
        name: String,
        /// The fields, in declaration order.
        fields: Vec<Field>,
    },
    /// An enum, externally tagged: a unit variant is its name (a string),
    /// any other variant a map of one entry, from its name to its content.
    Enum {
        /// The enum's name.
        name: String,
        /// The variants, in declaration order.
        variants: Vec<Variant>,
    },
    /// The enclosing struct, enum, newtype or tuple struct of this name,
    /// nearest first: a recursive type.
    Ref {
        /// The name.
        name: String,
    },
    /// Any value: the descriptor cannot say which shape (see the module docs).
    Any {
        /// Why, when tracing could not tell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A type kind from a newer version of the format.
    #[serde(other)]
    Unknown,
}

impl Type {
    /// `{"type": "option", "of": ty}`.
    pub fn option(of: Type) -> Self {
        Self::Option { of: Box::new(of) }
    }

    /// `{"type": "seq", "of": ty}`.
    pub fn seq(of: Type) -> Self {
        Self::Seq { of: Box::new(of) }
    }

    /// `{"type": "map", "key": key, "value": value}`.
    pub fn map(key: Type, value: Type) -> Self {
        Self::Map {
            key: Box::new(key),
            value: Box::new(value),
        }
    }

    /// `{"type": "any", "note": note}`.
    pub fn any(note: impl Into<String>) -> Self {
        Self::Any {
            note: Some(note.into()),
        }
    }

    /// The name of a struct, enum, newtype, named tuple or reference.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Newtype { name, .. }
            | Self::Struct { name, .. }
            | Self::Enum { name, .. }
            | Self::Ref { name } => Some(name),
            Self::Tuple { name, .. } => name.as_deref(),
            _ => None,
        }
    }
}

/// One variant of an enum; the JSON form is tagged by `"form"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Variant {
    /// On the wire: the name, as a string.
    Unit {
        /// The variant's name.
        name: String,
    },
    /// On the wire: `{name: value}`.
    Newtype {
        /// The variant's name.
        name: String,
        /// The value's type.
        of: Type,
    },
    /// On the wire: `{name: [items...]}`.
    Tuple {
        /// The variant's name.
        name: String,
        /// The elements' types.
        items: Vec<Type>,
    },
    /// On the wire: `{name: {field: value, ...}}`.
    Struct {
        /// The variant's name.
        name: String,
        /// The fields.
        fields: Vec<Field>,
    },
}

impl Variant {
    /// The variant's name: its tag on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::Unit { name }
            | Self::Newtype { name, .. }
            | Self::Tuple { name, .. }
            | Self::Struct { name, .. } => name,
        }
    }

    /// `unit`, `newtype`, `tuple` or `struct`.
    pub fn form(&self) -> &'static str {
        match self {
            Self::Unit { .. } => "unit",
            Self::Newtype { .. } => "newtype",
            Self::Tuple { .. } => "tuple",
            Self::Struct { .. } => "struct",
        }
    }
}

impl std::fmt::Display for Type {
    /// The compact form people read: `i64`, `[string]`, `u32?`,
    /// `{string: i64}`, `(i64, bytes)`, or a struct's or enum's name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render::compact(self))
    }
}

/// The canonical signature of a method, as hashed (see `docs/DESCRIPTOR.md`).
pub fn canonical_signature(method: &MethodDescriptor) -> String {
    canon::method(method)
}

#[cfg(test)]
mod tests;
