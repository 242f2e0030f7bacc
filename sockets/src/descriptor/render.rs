//! How people read types and signatures: compact, named containers by name.

use super::{MethodDescriptor, MethodKind, Type};

/// `i64`, `[string]`, `u32?`, `{string: i64}`, `(i64, bytes)`, `Point`.
pub(super) fn compact(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::I8 => "i8".into(),
        Type::I16 => "i16".into(),
        Type::I32 => "i32".into(),
        Type::I64 => "i64".into(),
        Type::I128 => "i128".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::U128 => "u128".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::Bytes => "bytes".into(),
        Type::Unit => "()".into(),
        Type::Any { .. } => "any".into(),
        Type::Unknown => "unknown".into(),
        Type::Option { of } => format!("{}?", compact(of)),
        Type::Seq { of } => format!("[{}]", compact(of)),
        Type::Map { key, value } => format!("{{{}: {}}}", compact(key), compact(value)),
        Type::Tuple {
            name: Some(name), ..
        } => name.clone(),
        Type::Tuple { name: None, items } => {
            let items: Vec<String> = items.iter().map(compact).collect();
            format!("({})", items.join(", "))
        }
        Type::Newtype { name, .. }
        | Type::Struct { name, .. }
        | Type::Enum { name, .. }
        | Type::Ref { name } => name.clone(),
    }
}

/// `calculator.divide(a: i64, b: i64) -> i64 ! DivideError`, or
/// `log.line(text: string)` (notify).
pub(super) fn signature(method: &MethodDescriptor) -> String {
    let params: Vec<String> = method
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, compact(&p.ty)))
        .collect();
    let mut out = format!("{}({})", method.name, params.join(", "));
    if let Some(item) = &method.stream_in {
        out.push_str(" <- stream<");
        out.push_str(&compact(item));
        out.push('>');
    }
    match (&method.kind, &method.returns) {
        (MethodKind::Notify, _) => out.push_str("  [notify]"),
        (_, Some(Type::Unit)) if method.error.is_none() => {}
        (_, Some(returns)) => {
            out.push_str(" -> ");
            out.push_str(&compact(returns));
        }
        (_, None) => {}
    }
    if let Some(error) = &method.error {
        out.push_str(" ! ");
        out.push_str(&compact(error));
    }
    if let Some(item) = &method.stream_out {
        out.push_str(" -> stream<");
        out.push_str(&compact(item));
        out.push('>');
    }
    if method.kind == MethodKind::Other {
        out.push_str("  [unknown kind]");
    }
    out
}
