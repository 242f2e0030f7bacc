//! The canonical signature of a method and the hashes over it
//! (`docs/DESCRIPTOR.md` §4 specifies the same text).
//!
//! Only what changes the bytes on the wire is in it: the method's kind and
//! wire name, its parameter types in order, its return and error types.
//! Parameter names, docs, the `open` flag and container names are left out
//! (renaming a Rust type changes nothing on the wire); struct fields and enum
//! variants are sorted by name (a map's keys, a variant's tag: order does not
//! travel); a newtype is its inner type.

use sha2::{Digest, Sha256};

use super::{MethodDescriptor, MethodKind, ServiceDescriptor, Type, Variant};

/// `sha256:` and the lowercase hex SHA-256 of `text`.
pub(super) fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The hash of a service: of its methods' canonical signatures, sorted, one per line.
pub(super) fn service_hash(service: &ServiceDescriptor) -> String {
    let mut lines: Vec<String> = service.methods.iter().map(method).collect();
    lines.sort();
    hash(&lines.join("\n"))
}

/// `call calculator.divide(i64,i64)->i64!enum{ByZero}`.
pub(super) fn method(method: &MethodDescriptor) -> String {
    let kind = match method.kind {
        MethodKind::Call => "call",
        MethodKind::Notify => "notify",
        MethodKind::ServerStream => "server_stream",
        MethodKind::ClientStream => "client_stream",
        MethodKind::BidiStream => "bidi_stream",
        MethodKind::Other => "other",
    };
    let params: Vec<String> = method.params.iter().map(|p| ty(&p.ty)).collect();
    let mut out = format!("{kind} {}({})", method.name, params.join(","));
    if let Some(item) = &method.stream_in {
        out.push_str("<=stream(");
        out.push_str(&ty(item));
        out.push(')');
    }
    if let Some(returns) = &method.returns {
        out.push_str("->");
        out.push_str(&ty(returns));
    }
    if let Some(error) = &method.error {
        out.push('!');
        out.push_str(&ty(error));
    }
    if let Some(item) = &method.stream_out {
        out.push_str("=>stream(");
        out.push_str(&ty(item));
        out.push(')');
    }
    out
}

/// The canonical text of a type.
pub(super) fn ty(ty: &Type) -> String {
    let mut out = String::new();
    write(ty, &mut Vec::new(), &mut out);
    out
}

/// Writes `ty`; `names` holds the enclosing named containers, innermost
/// last, so a reference is written as its distance (`^1`: the innermost).
fn write<'a>(ty: &'a Type, names: &mut Vec<&'a str>, out: &mut String) {
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::I8 => out.push_str("i8"),
        Type::I16 => out.push_str("i16"),
        Type::I32 => out.push_str("i32"),
        Type::I64 => out.push_str("i64"),
        Type::I128 => out.push_str("i128"),
        Type::U8 => out.push_str("u8"),
        Type::U16 => out.push_str("u16"),
        Type::U32 => out.push_str("u32"),
        Type::U64 => out.push_str("u64"),
        Type::U128 => out.push_str("u128"),
        Type::F32 => out.push_str("f32"),
        Type::F64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::Bytes => out.push_str("bytes"),
        Type::Unit => out.push_str("unit"),
        Type::Any { .. } => out.push_str("any"),
        Type::Unknown => out.push_str("unknown"),
        Type::Option { of } => wrapped("option", of, names, out),
        Type::Seq { of } => wrapped("seq", of, names, out),
        Type::Map { key, value } => {
            out.push_str("map<");
            write(key, names, out);
            out.push(',');
            write(value, names, out);
            out.push('>');
        }
        Type::Tuple { name, items } => named(name.as_deref(), names, out, |names, out| {
            list(items, names, out);
        }),
        Type::Newtype { name, of } => named(Some(name), names, out, |names, out| {
            write(of, names, out);
        }),
        Type::Struct { name, fields } => named(Some(name), names, out, |names, out| {
            let mut fields: Vec<_> = fields.iter().collect();
            fields.sort_by(|a, b| a.name.cmp(&b.name));
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&field.name);
                out.push(':');
                write(&field.ty, names, out);
            }
            out.push('}');
        }),
        Type::Enum { name, variants } => named(Some(name), names, out, |names, out| {
            let mut variants: Vec<_> = variants.iter().collect();
            variants.sort_by(|a, b| a.name().cmp(b.name()));
            out.push_str("enum{");
            for (i, variant) in variants.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(variant.name());
                match variant {
                    Variant::Unit { .. } => {}
                    Variant::Newtype { of, .. } => {
                        out.push('(');
                        write(of, names, out);
                        out.push(')');
                    }
                    Variant::Tuple { items, .. } => {
                        out.push('#');
                        list(items, names, out);
                    }
                    Variant::Struct { fields, .. } => {
                        let mut fields: Vec<_> = fields.iter().collect();
                        fields.sort_by(|a, b| a.name.cmp(&b.name));
                        out.push('{');
                        for (i, field) in fields.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str(&field.name);
                            out.push(':');
                            write(&field.ty, names, out);
                        }
                        out.push('}');
                    }
                }
            }
            out.push('}');
        }),
        Type::Ref { name } => match names.iter().rev().position(|n| n == name) {
            Some(distance) => out.push_str(&format!("^{}", distance + 1)),
            None => out.push_str(&format!("ref:{name}")),
        },
    }
}

fn wrapped<'a>(what: &str, of: &'a Type, names: &mut Vec<&'a str>, out: &mut String) {
    out.push_str(what);
    out.push('<');
    write(of, names, out);
    out.push('>');
}

/// `(a,b)`.
fn list<'a>(items: &'a [Type], names: &mut Vec<&'a str>, out: &mut String) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(item, names, out);
    }
    out.push(')');
}

/// Writes a container's content with its name on the stack (an unnamed
/// tuple pushes nothing: nothing can refer to it).
fn named<'a>(
    name: Option<&'a str>,
    names: &mut Vec<&'a str>,
    out: &mut String,
    content: impl FnOnce(&mut Vec<&'a str>, &mut String),
) {
    match name {
        Some(name) => {
            names.push(name);
            content(names, out);
            names.pop();
        }
        None => content(names, out),
    }
}
