//! Tracing a type: its own `Deserialize` runs against a deserializer that
//! records what it is asked for and hands back sample values.
//!
//! One pass of `T::deserialize` can visit only one variant of each enum it
//! meets, so the tracer makes passes until every variant of every enum it met
//! was visited once: each pass visits the next unvisited variant of an enum.
//! Enums are keyed by the Rust type's name (`std::any::type_name`), so two
//! instances of a generic enum (`Result<A, E>`, `Result<B, F>`) stay apart.
//!
//! A container met again inside itself (a recursive type) is recorded as a
//! [`Type::Ref`]; below it the tracer records nothing and only produces the
//! smallest value it can (no option, no elements, an enum variant not being
//! explored), so the recursion ends.
//!
//! This is what `serde-reflection` does, with three differences that decided
//! for our own: that crate needs a separate trace of every enum nested in a
//! type (the user's types are not ours to list), keys containers by serde's
//! name alone (so `Result<A, E>` and `Result<B, F>` in one service clash),
//! and fails the whole type where we record [`Type::Any`].

use std::collections::HashMap;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::{Field, Type, Variant};

/// Passes made at most for one type: enough for an enum of a few hundred
/// variants nested in another; a type needing more is described as `any`.
const MAX_PASSES: usize = 4096;

/// Containers nested at most (recursion is cut before this).
const MAX_DEPTH: usize = 128;

/// The wire shape of `T`, as its `Deserialize` asks for it. Never fails: what
/// cannot be traced is [`Type::Any`] with a note saying why.
pub fn trace<T: DeserializeOwned>() -> Type {
    let mut last = None;
    // Zero first, then one: some types refuse zero (`NonZeroU32`).
    for sample in [0, 1] {
        let mut tracer = Tracer::new(sample);
        match tracer.run::<T>() {
            Ok(node) => return tracer.resolve(&node, &mut Vec::new()),
            Err(error) => {
                let retry = matches!(error, TraceError::Custom(_)) && !tracer.any_seen;
                last = Some((error, tracer.any_seen));
                if !retry {
                    break;
                }
            }
        }
    }
    let note = match last {
        Some((_, true)) => {
            "its Deserialize asks the format what comes next (deserialize_any): an untagged, internally or adjacently tagged enum, a flattened field, or a dynamic value".to_string()
        }
        Some((error, false)) => format!("could not be traced: {error}"),
        None => "could not be traced".to_string(),
    };
    Type::any(note)
}

/// Why a pass failed.
#[derive(Debug)]
enum TraceError {
    /// The type's own `Deserialize` refused something.
    Custom(String),
    /// A deserializer method the tracer cannot answer.
    Unsupported(&'static str),
    /// Too deep, or too many passes.
    Limit(&'static str),
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Custom(message) => f.write_str(message),
            Self::Unsupported(what) => write!(f, "`{what}` is not supported"),
            Self::Limit(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Custom(message.to_string())
    }
}

/// What one pass recorded at one position.
#[derive(Clone, Debug)]
enum Node {
    /// Not visited (the visitor did not ask).
    Unvisited,
    Leaf(Type),
    Option(Box<Node>),
    Seq(Box<Node>),
    Tuple(Option<String>, Vec<Node>),
    Map(Box<Node>, Box<Node>),
    Newtype(String, Box<Node>),
    Struct(String, Vec<(String, Node)>),
    /// An enum, by key: its variants are in the tracer's table.
    Enum(&'static str),
    Ref(String),
    Any,
}

/// One enum's variants, visited over passes.
struct EnumState {
    name: &'static str,
    variants: &'static [&'static str],
    traced: Vec<Option<VariantNode>>,
    /// The next variant a pass visits.
    next: usize,
    /// Variants being visited right now (on the stack).
    exploring: Vec<usize>,
}

#[derive(Clone, Debug)]
enum VariantNode {
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(String, Node)>),
}

struct Tracer {
    /// The value given for every number.
    sample: u8,
    enums: HashMap<&'static str, EnumState>,
    /// The containers being traced, by Rust type name.
    stack: Vec<&'static str>,
    /// Above zero: below a recursive reference, recording nothing.
    minimal: usize,
    depth: usize,
    any_seen: bool,
}

impl Tracer {
    fn new(sample: u8) -> Self {
        Self {
            sample,
            enums: HashMap::new(),
            stack: Vec::new(),
            minimal: 0,
            depth: 0,
            any_seen: false,
        }
    }

    /// Passes until every variant was visited.
    fn run<T: DeserializeOwned>(&mut self) -> Result<Node, TraceError> {
        let mut root = None;
        for _ in 0..MAX_PASSES {
            self.stack.clear();
            self.minimal = 0;
            self.depth = 0;
            let mut node = Node::Unvisited;
            T::deserialize(De {
                tracer: self,
                out: &mut node,
            })?;
            root.get_or_insert(node);
            if self
                .enums
                .values()
                .all(|e| e.traced.iter().all(Option::is_some))
            {
                return root.ok_or(TraceError::Limit("no pass"));
            }
        }
        Err(TraceError::Limit("too many enum variants to trace"))
    }

    /// The [`Type`] of what the passes recorded; `enums` holds the enums
    /// being resolved, so a loop through the table becomes a reference.
    fn resolve(&self, node: &Node, enums: &mut Vec<&'static str>) -> Type {
        match node {
            Node::Unvisited => Type::any("never asked for by its Deserialize"),
            Node::Leaf(ty) => ty.clone(),
            Node::Option(of) => Type::option(self.resolve(of, enums)),
            Node::Seq(of) => Type::seq(self.resolve(of, enums)),
            Node::Tuple(name, items) => Type::Tuple {
                name: name.clone(),
                items: items.iter().map(|n| self.resolve(n, enums)).collect(),
            },
            Node::Map(key, value) => {
                Type::map(self.resolve(key, enums), self.resolve(value, enums))
            }
            Node::Newtype(name, of) => Type::Newtype {
                name: name.clone(),
                of: Box::new(self.resolve(of, enums)),
            },
            Node::Struct(name, fields) => Type::Struct {
                name: name.clone(),
                fields: self.fields(fields, enums),
            },
            Node::Enum(key) => {
                let Some(state) = self.enums.get(key) else {
                    return Type::any("an enum that was never visited");
                };
                if enums.contains(key) {
                    return Type::Ref {
                        name: state.name.to_owned(),
                    };
                }
                enums.push(key);
                let variants = state
                    .variants
                    .iter()
                    .zip(&state.traced)
                    .map(|(name, traced)| self.variant(name, traced.as_ref(), enums))
                    .collect();
                enums.pop();
                Type::Enum {
                    name: state.name.to_owned(),
                    variants,
                }
            }
            Node::Ref(name) => Type::Ref { name: name.clone() },
            Node::Any => Type::Any { note: None },
        }
    }

    fn fields(&self, fields: &[(String, Node)], enums: &mut Vec<&'static str>) -> Vec<Field> {
        fields
            .iter()
            .map(|(name, node)| Field::new(name.clone(), self.resolve(node, enums)))
            .collect()
    }

    fn variant(
        &self,
        name: &str,
        traced: Option<&VariantNode>,
        enums: &mut Vec<&'static str>,
    ) -> Variant {
        let name = name.to_owned();
        match traced {
            None => Variant::Newtype {
                name,
                of: Type::any("a variant that was never visited"),
            },
            Some(VariantNode::Unit) => Variant::Unit { name },
            Some(VariantNode::Newtype(of)) => Variant::Newtype {
                name,
                of: self.resolve(of, enums),
            },
            Some(VariantNode::Tuple(items)) => Variant::Tuple {
                name,
                items: items.iter().map(|n| self.resolve(n, enums)).collect(),
            },
            Some(VariantNode::Struct(fields)) => Variant::Struct {
                name,
                fields: self.fields(fields, enums),
            },
        }
    }

    /// Enters a nested position; fails past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), TraceError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(TraceError::Limit("nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Whether the container `key` is already being traced: a recursion.
    fn recursing(&self, key: &str) -> bool {
        self.stack.contains(&key)
    }
}

/// The deserializer of one position: records into `out`.
struct De<'t> {
    tracer: &'t mut Tracer,
    out: &'t mut Node,
}

impl De<'_> {
    fn leaf(self, ty: Type) {
        if self.tracer.minimal == 0 {
            *self.out = Node::Leaf(ty);
        }
    }

    /// Traces a named container's content with `visit`, or, when it is met
    /// inside itself, records a reference and produces a value below it.
    fn container<R>(
        self,
        key: &'static str,
        name: &'static str,
        visit: impl FnOnce(&mut Tracer) -> Result<(R, Node), TraceError>,
    ) -> Result<R, TraceError> {
        let tracer = self.tracer;
        tracer.enter()?;
        let result = if tracer.recursing(key) || tracer.minimal > 0 {
            if tracer.minimal == 0 {
                *self.out = Node::Ref(name.to_owned());
            }
            tracer.minimal += 1;
            let value = visit(tracer);
            tracer.minimal -= 1;
            value.map(|(value, _)| value)
        } else {
            tracer.stack.push(key);
            let value = visit(tracer);
            tracer.stack.pop();
            value.map(|(value, node)| {
                *self.out = node;
                value
            })
        };
        tracer.leave();
        result
    }
}

/// Elements of a sequence, tuple or struct: one per slot.
struct Elements<'t> {
    tracer: &'t mut Tracer,
    slots: std::slice::IterMut<'t, Node>,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, TraceError> {
        let Some(out) = self.slots.next() else {
            return Ok(None);
        };
        seed.deserialize(De {
            tracer: self.tracer,
            out,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.slots.len())
    }
}

impl<'de> MapAccess<'de> for Elements<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        self.next_element_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        self.next_element_seed(seed)?
            .ok_or(TraceError::Unsupported("a map value without a key"))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.slots.len() / 2)
    }
}

/// Traces `count` elements with `visit` (a sequence's, tuple's or struct's
/// visitor), returning the value and the elements' nodes.
fn elements<'de, V: Visitor<'de>>(
    tracer: &mut Tracer,
    count: usize,
    visit: impl FnOnce(&mut Elements<'_>) -> Result<V::Value, TraceError>,
) -> Result<(V::Value, Vec<Node>), TraceError> {
    let mut nodes = vec![Node::Unvisited; count];
    let value = visit(&mut Elements {
        tracer,
        slots: nodes.iter_mut(),
    })?;
    Ok((value, nodes))
}

fn named(fields: &'static [&'static str], nodes: Vec<Node>) -> Vec<(String, Node)> {
    fields.iter().map(|f| (*f).to_owned()).zip(nodes).collect()
}

macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ident $rust:ty;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
                let sample = self.tracer.sample as $rust;
                self.leaf(Type::$ty);
                visitor.$visit(sample)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = TraceError;

    numbers! {
        deserialize_i8 visit_i8 I8 i8;
        deserialize_i16 visit_i16 I16 i16;
        deserialize_i32 visit_i32 I32 i32;
        deserialize_i64 visit_i64 I64 i64;
        deserialize_i128 visit_i128 I128 i128;
        deserialize_u8 visit_u8 U8 u8;
        deserialize_u16 visit_u16 U16 u16;
        deserialize_u32 visit_u32 U32 u32;
        deserialize_u64 visit_u64 U64 u64;
        deserialize_u128 visit_u128 U128 u128;
        deserialize_f32 visit_f32 F32 f32;
        deserialize_f64 visit_f64 F64 f64;
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // A dynamic value (`serde_json::Value`) takes a nil; an untagged or
        // internally tagged enum does not, and the trace fails.
        self.tracer.any_seen = true;
        if self.tracer.minimal == 0 {
            *self.out = Node::Any;
        }
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::Bool);
        visitor.visit_bool(false)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::Char);
        visitor.visit_char('a')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::String);
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::String);
        visitor.visit_string(String::new())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::Bytes);
        visitor.visit_bytes(&[])
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::Bytes);
        visitor.visit_byte_buf(Vec::new())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        if self.tracer.minimal > 0 {
            return visitor.visit_none();
        }
        self.tracer.enter()?;
        let mut of = Node::Unvisited;
        let value = visitor.visit_some(De {
            tracer: self.tracer,
            out: &mut of,
        });
        self.tracer.leave();
        *self.out = Node::Option(Box::new(of));
        value
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.leaf(Type::Unit);
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        // Written as an empty array.
        if self.tracer.minimal == 0 {
            *self.out = Node::Tuple(Some(name.to_owned()), Vec::new());
        }
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let key = std::any::type_name::<V::Value>();
        self.container(key, name, |tracer| {
            let mut of = Node::Unvisited;
            let value = visitor.visit_newtype_struct(De {
                tracer,
                out: &mut of,
            })?;
            Ok((value, Node::Newtype(name.to_owned(), Box::new(of))))
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let count = if self.tracer.minimal > 0 { 0 } else { 1 };
        self.tracer.enter()?;
        let traced = elements::<V>(self.tracer, count, |e| visitor.visit_seq(e));
        self.tracer.leave();
        let (value, nodes) = traced?;
        if self.tracer.minimal == 0 {
            let of = nodes.into_iter().next().unwrap_or(Node::Unvisited);
            *self.out = Node::Seq(Box::new(of));
        }
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.tracer.enter()?;
        let traced = elements::<V>(self.tracer, len, |e| visitor.visit_seq(e));
        self.tracer.leave();
        let (value, nodes) = traced?;
        if self.tracer.minimal == 0 {
            *self.out = Node::Tuple(None, nodes);
        }
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let key = std::any::type_name::<V::Value>();
        self.container(key, name, |tracer| {
            let (value, nodes) = elements::<V>(tracer, len, |e| visitor.visit_seq(e))?;
            Ok((value, Node::Tuple(Some(name.to_owned()), nodes)))
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let count = if self.tracer.minimal > 0 { 0 } else { 2 };
        self.tracer.enter()?;
        let traced = elements::<V>(self.tracer, count, |e| visitor.visit_map(e));
        self.tracer.leave();
        let (value, nodes) = traced?;
        if self.tracer.minimal == 0 {
            let mut nodes = nodes.into_iter();
            let key = nodes.next().unwrap_or(Node::Unvisited);
            let value_node = nodes.next().unwrap_or(Node::Unvisited);
            *self.out = Node::Map(Box::new(key), Box::new(value_node));
        }
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let key = std::any::type_name::<V::Value>();
        self.container(key, name, |tracer| {
            let (value, nodes) = elements::<V>(tracer, fields.len(), |e| visitor.visit_seq(e))?;
            Ok((value, Node::Struct(name.to_owned(), named(fields, nodes))))
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if variants.is_empty() {
            return Err(TraceError::Unsupported("an enum without variants"));
        }
        let key = std::any::type_name::<V::Value>();
        let tracer = self.tracer;
        let state = tracer.enums.entry(key).or_insert_with(|| EnumState {
            name,
            variants,
            traced: vec![None; variants.len()],
            next: 0,
            exploring: Vec::new(),
        });
        let recursing = tracer.stack.contains(&key);
        let minimal = tracer.minimal > 0 || recursing;
        let index = if minimal {
            // The smallest value: a unit variant if one is known, else the
            // first variant not being explored above.
            state
                .traced
                .iter()
                .position(|t| matches!(t, Some(VariantNode::Unit)))
                .or_else(|| (0..variants.len()).find(|i| !state.exploring.contains(i)))
                .unwrap_or(0)
        } else {
            let index = state.next % variants.len();
            state.next += 1;
            index
        };
        if minimal {
            if tracer.minimal == 0 {
                *self.out = Node::Ref(name.to_owned());
            }
            // Marked as explored too, so a recursion below it picks another.
            state.exploring.push(index);
            tracer.enter()?;
            tracer.minimal += 1;
            let value = visitor.visit_enum(Access {
                tracer: &mut *tracer,
                variant: variants[index],
                out: &mut None,
            });
            tracer.minimal -= 1;
            tracer.leave();
            if let Some(state) = tracer.enums.get_mut(key) {
                state.exploring.pop();
            }
            return value;
        }
        state.exploring.push(index);
        tracer.stack.push(key);
        tracer.enter()?;
        let mut traced = None;
        let value = visitor.visit_enum(Access {
            tracer: &mut *tracer,
            variant: variants[index],
            out: &mut traced,
        });
        tracer.leave();
        tracer.stack.pop();
        if let Some(state) = tracer.enums.get_mut(key) {
            state.exploring.pop();
            if state.traced[index].is_none() {
                state.traced[index] = traced;
            }
        }
        *self.out = Node::Enum(key);
        value
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, TraceError> {
        Err(TraceError::Unsupported("deserialize_identifier"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        // As the MessagePack codec: `IpAddr`, `Uuid` and the like take their compact forms.
        false
    }
}

/// One enum value: the variant a pass chose.
struct Access<'t> {
    tracer: &'t mut Tracer,
    variant: &'static str,
    out: &'t mut Option<VariantNode>,
}

impl<'de, 't> EnumAccess<'de> for Access<'t> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), TraceError> {
        let name: BorrowedStrDeserializer<'_, TraceError> =
            BorrowedStrDeserializer::new(self.variant);
        // A hand-written `Deserialize` that wants variants by index is not traced.
        let value = seed
            .deserialize(name)
            .map_err(|_| TraceError::Unsupported("enum variants identified by index"))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Access<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        *self.out = Some(VariantNode::Unit);
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, TraceError> {
        let mut of = Node::Unvisited;
        let value = seed.deserialize(De {
            tracer: self.tracer,
            out: &mut of,
        })?;
        *self.out = Some(VariantNode::Newtype(of));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, nodes) = elements::<V>(self.tracer, len, |e| visitor.visit_seq(e))?;
        *self.out = Some(VariantNode::Tuple(nodes));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, nodes) = elements::<V>(self.tracer, fields.len(), |e| visitor.visit_seq(e))?;
        *self.out = Some(VariantNode::Struct(named(fields, nodes)));
        Ok(value)
    }
}
