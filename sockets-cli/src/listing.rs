//! `sockets describe` for people: services, method signatures, docs, and
//! the structs and enums they name.

use std::fmt::Write;

use sockets::descriptor::{Document, Field, MethodDescriptor, ServiceDescriptor, Type, Variant};

/// The whole document, readable.
pub fn document(document: &Document) -> String {
    let mut out = String::new();
    if document.services.is_empty() {
        out.push_str("(no services)\n");
    }
    for (i, service) in document.services.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        self::service(service, &mut out);
    }
    out
}

fn service(service: &ServiceDescriptor, out: &mut String) {
    let hash = service
        .hash
        .strip_prefix("sha256:")
        .unwrap_or(&service.hash);
    let _ = writeln!(
        out,
        "service {}  (sha256 {})",
        service.name,
        &hash[..hash.len().min(16)]
    );
    doc(&service.doc, "  ", out);
    for method in &service.methods {
        let _ = writeln!(out, "  {}", signature(method));
        doc(&method.doc, "      ", out);
    }
    let mut types = Vec::new();
    for method in &service.methods {
        for param in &method.params {
            collect(&param.ty, &mut types);
        }
        for ty in method.returns.iter().chain(&method.error) {
            collect(ty, &mut types);
        }
    }
    if !types.is_empty() {
        out.push_str("  types:\n");
        for ty in types {
            let _ = writeln!(out, "    {}", definition(ty));
        }
    }
}

/// `greeter.greet(name: string) -> string ! GreetError`, with the method's
/// flags: `[open]`, `[notify]`.
pub fn signature(method: &MethodDescriptor) -> String {
    let mut line = method.signature();
    if method.open {
        line.push_str("  [open]");
    }
    line
}

fn doc(text: &str, indent: &str, out: &mut String) {
    for line in text.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// The named containers in `ty`, each once (by its definition).
fn collect<'a>(ty: &'a Type, found: &mut Vec<&'a Type>) {
    let inner: Vec<&Type> = match ty {
        Type::Option { of } | Type::Seq { of } | Type::Newtype { of, .. } => vec![of],
        Type::Map { key, value } => vec![key, value],
        Type::Tuple { items, .. } => items.iter().collect(),
        Type::Struct { fields, .. } => fields.iter().map(|f| &f.ty).collect(),
        Type::Enum { variants, .. } => variants
            .iter()
            .flat_map(|v| match v {
                Variant::Unit { .. } => Vec::new(),
                Variant::Newtype { of, .. } => vec![of],
                Variant::Tuple { items, .. } => items.iter().collect(),
                Variant::Struct { fields, .. } => fields.iter().map(|f| &f.ty).collect(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let named = matches!(
        ty,
        Type::Struct { .. }
            | Type::Enum { .. }
            | Type::Newtype { .. }
            | Type::Tuple { name: Some(_), .. }
    );
    if named && !found.iter().any(|t| definition(t) == definition(ty)) {
        found.push(ty);
    }
    for ty in inner {
        collect(ty, found);
    }
}

fn fields(fields: &[Field]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|f| format!("{}: {}", f.name, f.ty))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

fn items(items: &[Type]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("({})", items.join(", "))
}

/// `struct Point { x: i32, y: i32 }`, `enum Shape { Empty, Circle(f64) }`.
fn definition(ty: &Type) -> String {
    match ty {
        Type::Struct { name, fields: f } => format!("struct {name} {}", fields(f)),
        Type::Newtype { name, of } => format!("struct {name}({of})"),
        Type::Tuple {
            name: Some(name),
            items: i,
        } => format!("struct {name}{}", items(i)),
        Type::Enum { name, variants } => {
            let variants: Vec<String> = variants
                .iter()
                .map(|v| match v {
                    Variant::Unit { name } => name.clone(),
                    Variant::Newtype { name, of } => format!("{name}({of})"),
                    Variant::Tuple { name, items: i } => format!("{name}{}", items(i)),
                    Variant::Struct { name, fields: f } => format!("{name} {}", fields(f)),
                })
                .collect();
            format!("enum {name} {{ {} }}", variants.join(", "))
        }
        other => other.to_string(),
    }
}
