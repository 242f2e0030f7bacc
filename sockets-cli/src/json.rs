//! JSON arguments to MessagePack through a method's descriptor, and
//! MessagePack replies back to JSON.
//!
//! The descriptor decides what JSON means: `1` is a `u8`, an `i64` or an
//! `f64` as the parameter says (and is refused when it does not fit), a
//! string is base64 for `bytes`, an enum is `"Variant"` or
//! `{"Variant": content}`, a map's keys are parsed as its key type. Where
//! the descriptor says `any`, the JSON value is converted as it is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use sockets::descriptor::{Field, MethodDescriptor, Type, Variant};

/// Why a JSON value does not fit a type: where, and what was expected.
#[derive(Debug)]
pub struct Mismatch {
    /// Where in the arguments: `b`, `item.count`, `shape.Circle`.
    pub at: String,
    /// What went wrong.
    pub problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at `{}`: {}", self.at, self.problem)
    }
}

type Result<T> = std::result::Result<T, Mismatch>;

/// The arguments of `method` from JSON: an array (positional), an object
/// (by parameter name; a missing optional parameter is nil), or, for a
/// method without parameters, nothing. Returns one MessagePack array.
pub fn encode_args(method: &MethodDescriptor, args: Option<&Value>) -> Result<Vec<u8>> {
    let params = &method.params;
    let values: Vec<Option<&Value>> = match args {
        None => vec![None; params.len()],
        Some(Value::Array(items)) => {
            if items.len() != params.len() {
                return Err(Mismatch {
                    at: "arguments".into(),
                    problem: format!("{} given, the method takes {}", items.len(), params.len()),
                });
            }
            items.iter().map(Some).collect()
        }
        Some(Value::Object(named)) => {
            if let Some(unknown) = named.keys().find(|k| !params.iter().any(|p| &p.name == *k)) {
                return Err(Mismatch {
                    at: unknown.clone(),
                    problem: format!("no parameter of that name (expected {})", names(params)),
                });
            }
            params.iter().map(|p| named.get(&p.name)).collect()
        }
        Some(other) => {
            return Err(Mismatch {
                at: "arguments".into(),
                problem: format!(
                    "expected a JSON array of the arguments or an object by parameter name, found {}",
                    kind(other)
                ),
            });
        }
    };
    let mut out = Vec::new();
    write_len(&mut out, params.len(), Len::Array);
    for (param, value) in params.iter().zip(values) {
        match value {
            Some(value) => encode(value, &param.ty, &mut Cx::new(&param.name), &mut out)?,
            None if is_option(&param.ty) => rmp::encode::write_nil(&mut out).map_err(io)?,
            None => {
                return Err(Mismatch {
                    at: param.name.clone(),
                    problem: format!("missing (a {})", param.ty),
                });
            }
        }
    }
    Ok(out)
}

fn names(fields: &[Field]) -> String {
    let names: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name)).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Option { .. } | Type::Any { .. } | Type::Unit)
}

/// Where the conversion is, and the named containers around it (for references).
struct Cx<'a> {
    at: String,
    containers: Vec<&'a Type>,
}

impl<'a> Cx<'a> {
    fn new(at: &str) -> Self {
        Self {
            at: at.to_owned(),
            containers: Vec::new(),
        }
    }

    fn fail<T>(&self, problem: impl Into<String>) -> Result<T> {
        Err(Mismatch {
            at: self.at.clone(),
            problem: problem.into(),
        })
    }

    fn expected<T>(&self, ty: &Type, found: &Value) -> Result<T> {
        self.fail(format!(
            "expected {}, found {}",
            expectation(ty),
            kind(found)
        ))
    }

    /// Runs `inside` with `suffix` added to the location.
    fn at<T>(&mut self, suffix: &str, inside: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let len = self.at.len();
        self.at.push_str(suffix);
        let result = inside(self);
        self.at.truncate(len);
        result
    }
}

fn io(error: impl std::fmt::Display) -> Mismatch {
    Mismatch {
        at: String::new(),
        problem: error.to_string(),
    }
}

/// How a type is written in JSON, for messages.
fn expectation(ty: &Type) -> String {
    match ty {
        Type::Bytes => "bytes (a base64 string or an array of 0..=255)".into(),
        Type::Enum { variants, name } => {
            let names: Vec<&str> = variants.iter().map(Variant::name).collect();
            format!(
                "{name} (one of {}: \"Variant\" or {{\"Variant\": ...}})",
                names.join(", ")
            )
        }
        Type::Struct { name, fields } => format!("{name} (an object with {})", names(fields)),
        Type::Char => "char (a string of one character)".into(),
        other => other.to_string(),
    }
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().count() > 20 => "a string".into(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[derive(Clone, Copy)]
enum Len {
    Array,
    Map,
}

fn write_len(out: &mut Vec<u8>, len: usize, what: Len) {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    // Writing to a Vec cannot fail.
    let _ = match what {
        Len::Array => rmp::encode::write_array_len(out, len),
        Len::Map => rmp::encode::write_map_len(out, len),
    };
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    let _ = rmp::encode::write_str(out, text);
}

/// Writes `value` as `ty`.
fn encode<'a>(value: &Value, ty: &'a Type, cx: &mut Cx<'a>, out: &mut Vec<u8>) -> Result<()> {
    match ty {
        Type::Ref { name } => {
            let Some(target) = cx
                .containers
                .iter()
                .rev()
                .find(|t| t.name() == Some(name.as_str()))
                .copied()
            else {
                return generic(value, out);
            };
            encode(value, target, cx, out)
        }
        Type::Any { .. } | Type::Unknown => generic(value, out),
        Type::Bool => match value {
            Value::Bool(b) => {
                let _ = rmp::encode::write_bool(out, *b);
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => {
            let (min, max) = signed_range(ty);
            let n = integer(value, cx, ty)?;
            if n < min || n > max {
                return cx.fail(format!("{n} does not fit in {ty} ({min}..={max})"));
            }
            let _ = rmp::encode::write_sint(out, n as i64);
            Ok(())
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            let max = unsigned_max(ty);
            let n = integer(value, cx, ty)?;
            if n < 0 || n > max {
                return cx.fail(format!("{n} does not fit in {ty} (0..={max})"));
            }
            let _ = rmp::encode::write_uint(out, n as u64);
            Ok(())
        }
        Type::I128 | Type::U128 => {
            let n = integer(value, cx, ty)?;
            if matches!(ty, Type::U128) && n < 0 {
                return cx.fail(format!("{n} does not fit in u128"));
            }
            if let Ok(small) = i64::try_from(n) {
                let _ = rmp::encode::write_sint(out, small);
            } else if let Ok(small) = u64::try_from(n) {
                let _ = rmp::encode::write_uint(out, small);
            } else {
                let _ = rmp::encode::write_bin(out, &n.to_be_bytes());
            }
            Ok(())
        }
        Type::F32 | Type::F64 => {
            let Some(x) = value.as_f64() else {
                return cx.expected(ty, value);
            };
            let _ = if matches!(ty, Type::F32) {
                rmp::encode::write_f32(out, x as f32)
            } else {
                rmp::encode::write_f64(out, x)
            };
            Ok(())
        }
        Type::Char => match value {
            Value::String(s) if s.chars().count() == 1 => {
                write_str(out, s);
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::String => match value {
            Value::String(s) => {
                write_str(out, s);
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::Bytes => {
            let bytes = match value {
                Value::String(s) => STANDARD
                    .decode(s)
                    .or_else(|_| cx.fail("bytes are written as base64"))?,
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .map_or_else(|| cx.fail("an array of bytes holds numbers 0..=255"), Ok)?,
                other => return cx.expected(ty, other),
            };
            let _ = rmp::encode::write_bin(out, &bytes);
            Ok(())
        }
        Type::Unit => match value {
            Value::Null => {
                let _ = rmp::encode::write_nil(out);
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::Option { of } => match value {
            Value::Null => {
                let _ = rmp::encode::write_nil(out);
                Ok(())
            }
            value => encode(value, of, cx, out),
        },
        Type::Seq { of } => match value {
            Value::Array(items) => {
                write_len(out, items.len(), Len::Array);
                for (i, item) in items.iter().enumerate() {
                    cx.at(&format!("[{i}]"), |cx| encode(item, of, cx, out))?;
                }
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::Tuple { items, .. } => {
            cx.containers.push(ty);
            let result = tuple(value, ty, items, cx, out);
            cx.containers.pop();
            result
        }
        Type::Map {
            key,
            value: value_ty,
        } => match value {
            Value::Object(entries) => {
                write_len(out, entries.len(), Len::Map);
                for (k, v) in entries {
                    cx.at(&format!("[{k:?}]"), |cx| {
                        map_key(k, key, cx, out)?;
                        encode(v, value_ty, cx, out)
                    })?;
                }
                Ok(())
            }
            other => cx.expected(ty, other),
        },
        Type::Newtype { of, .. } => {
            cx.containers.push(ty);
            let result = encode(value, of, cx, out);
            cx.containers.pop();
            result
        }
        Type::Struct { fields, .. } => match value {
            Value::Object(object) => {
                cx.containers.push(ty);
                let result = fields_of(object, fields, cx, out);
                cx.containers.pop();
                result
            }
            other => cx.expected(ty, other),
        },
        Type::Enum { variants, .. } => {
            cx.containers.push(ty);
            let result = variant(value, ty, variants, cx, out);
            cx.containers.pop();
            result
        }
        _ => generic(value, out),
    }
}

fn tuple<'a>(
    value: &Value,
    ty: &'a Type,
    items: &'a [Type],
    cx: &mut Cx<'a>,
    out: &mut Vec<u8>,
) -> Result<()> {
    match value {
        // A unit struct: `null` or `[]`.
        Value::Null if items.is_empty() => {
            write_len(out, 0, Len::Array);
            Ok(())
        }
        Value::Array(values) if values.len() == items.len() => {
            write_len(out, items.len(), Len::Array);
            for (i, (v, t)) in values.iter().zip(items).enumerate() {
                cx.at(&format!("[{i}]"), |cx| encode(v, t, cx, out))?;
            }
            Ok(())
        }
        Value::Array(values) => cx.fail(format!(
            "expected {} elements ({ty}), found {}",
            items.len(),
            values.len()
        )),
        other => cx.expected(ty, other),
    }
}

/// A map key from its JSON text: a string as it is, anything else parsed as JSON.
fn map_key<'a>(key: &str, ty: &'a Type, cx: &mut Cx<'a>, out: &mut Vec<u8>) -> Result<()> {
    let as_string = Value::String(key.to_owned());
    if encode(&as_string, ty, cx, &mut Vec::new()).is_ok() {
        return encode(&as_string, ty, cx, out);
    }
    match serde_json::from_str::<Value>(key) {
        Ok(parsed) => encode(&parsed, ty, cx, out),
        Err(_) => cx.fail(format!("the key {key:?} is not a {}", expectation(ty))),
    }
}

fn fields_of<'a>(
    object: &Map<String, Value>,
    fields: &'a [Field],
    cx: &mut Cx<'a>,
    out: &mut Vec<u8>,
) -> Result<()> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !fields.iter().any(|f| &f.name == *k))
    {
        return cx.fail(format!(
            "unknown field `{unknown}` (expected {})",
            names(fields)
        ));
    }
    let present: Vec<&Field> = fields
        .iter()
        .filter(|f| object.contains_key(&f.name))
        .collect();
    if let Some(missing) = fields
        .iter()
        .find(|f| !object.contains_key(&f.name) && !is_option(&f.ty))
    {
        return cx.fail(format!(
            "missing field `{}` (a {})",
            missing.name, missing.ty
        ));
    }
    write_len(out, present.len(), Len::Map);
    for field in present {
        write_str(out, &field.name);
        let value = &object[&field.name];
        cx.at(&format!(".{}", field.name), |cx| {
            encode(value, &field.ty, cx, out)
        })?;
    }
    Ok(())
}

fn variant<'a>(
    value: &Value,
    ty: &'a Type,
    variants: &'a [Variant],
    cx: &mut Cx<'a>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (name, content) = match value {
        Value::String(name) => (name.as_str(), None),
        Value::Object(object) if object.len() == 1 => {
            let (name, content) = object.iter().next().expect("one entry");
            (name.as_str(), Some(content))
        }
        other => return cx.expected(ty, other),
    };
    let Some(found) = variants.iter().find(|v| v.name() == name) else {
        return cx.fail(format!("no variant `{name}`: expected {}", expectation(ty)));
    };
    cx.at(&format!(".{name}"), |cx| match (found, content) {
        (Variant::Unit { .. }, None | Some(Value::Null)) => {
            write_str(out, name);
            Ok(())
        }
        (Variant::Unit { .. }, Some(_)) => cx.fail("a unit variant has no content"),
        (_, None) => cx.fail(format!(
            "a {} variant: write {{\"{name}\": ...}}",
            found.form()
        )),
        (Variant::Newtype { of, .. }, Some(content)) => {
            write_len(out, 1, Len::Map);
            write_str(out, name);
            encode(content, of, cx, out)
        }
        (Variant::Tuple { items, .. }, Some(content)) => {
            write_len(out, 1, Len::Map);
            write_str(out, name);
            tuple(content, ty, items, cx, out)
        }
        (Variant::Struct { fields, .. }, Some(Value::Object(object))) => {
            write_len(out, 1, Len::Map);
            write_str(out, name);
            fields_of(object, fields, cx, out)
        }
        (Variant::Struct { fields, .. }, Some(other)) => cx.fail(format!(
            "expected an object with {}, found {}",
            names(fields),
            kind(other)
        )),
    })
}

fn signed_range(ty: &Type) -> (i128, i128) {
    match ty {
        Type::I8 => (i8::MIN.into(), i8::MAX.into()),
        Type::I16 => (i16::MIN.into(), i16::MAX.into()),
        Type::I32 => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

fn unsigned_max(ty: &Type) -> i128 {
    match ty {
        Type::U8 => u8::MAX.into(),
        Type::U16 => u16::MAX.into(),
        Type::U32 => u32::MAX.into(),
        _ => u64::MAX.into(),
    }
}

/// An integer from a JSON number, or a string of digits (for values past
/// what JSON readers keep exactly).
fn integer(value: &Value, cx: &Cx<'_>, ty: &Type) -> Result<i128> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i.into())
            } else if let Some(u) = n.as_u64() {
                Ok(u.into())
            } else {
                cx.fail(format!("{n} is not an integer ({ty})"))
            }
        }
        Value::String(s) => s.trim().parse::<i128>().or_else(|_| cx.expected(ty, value)),
        other => cx.expected(ty, other),
    }
}

/// A JSON value as it is: numbers as integers where they are, objects as
/// maps with string keys.
fn generic(value: &Value, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Null => {
            let _ = rmp::encode::write_nil(out);
        }
        Value::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
        Value::Number(n) => {
            let _ = if let Some(i) = n.as_i64() {
                rmp::encode::write_sint(out, i).map(|_| ())
            } else if let Some(u) = n.as_u64() {
                rmp::encode::write_uint(out, u).map(|_| ())
            } else {
                rmp::encode::write_f64(out, n.as_f64().unwrap_or(f64::NAN))
            };
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            write_len(out, items.len(), Len::Array);
            for item in items {
                generic(item, out)?;
            }
        }
        Value::Object(entries) => {
            write_len(out, entries.len(), Len::Map);
            for (k, v) in entries {
                write_str(out, k);
                generic(v, out)?;
            }
        }
    }
    Ok(())
}

/// One MessagePack value as JSON: `bin` as base64, maps with keys that are
/// not strings keyed by the key's JSON text.
///
/// # Errors
/// When `bytes` is not one complete MessagePack value.
pub fn decode(bytes: &[u8]) -> std::result::Result<Value, String> {
    let mut reader = bytes;
    let value = rmpv::decode::read_value(&mut reader).map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes after the value", reader.len()));
    }
    Ok(to_json(value))
}

fn to_json(value: rmpv::Value) -> Value {
    use rmpv::Value as V;
    match value {
        V::Nil => Value::Null,
        V::Boolean(b) => Value::Bool(b),
        V::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        V::F32(x) => serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number),
        V::F64(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        V::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => Value::Null,
        },
        V::Binary(bytes) => Value::String(STANDARD.encode(bytes)),
        V::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        V::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        V::Ext(kind, data) => serde_json::json!({"ext": kind, "data": STANDARD.encode(data)}),
    }
}

#[cfg(test)]
mod tests {
    use sockets::descriptor::{MethodKind, trace};

    use super::*;

    fn method(params: Vec<(&str, Type)>) -> MethodDescriptor {
        MethodDescriptor::new(
            "s.m",
            MethodKind::Call,
            false,
            "",
            params.into_iter().map(|(n, t)| Field::new(n, t)).collect(),
            Some(Type::Unit),
        )
    }

    fn args(method: &MethodDescriptor, json: &str) -> Result<Vec<u8>> {
        encode_args(method, Some(&serde_json::from_str(json).unwrap()))
    }

    #[test]
    fn integers_follow_the_declared_width() {
        let m = method(vec![("a", Type::U8), ("b", Type::I64)]);
        assert_eq!(args(&m, "[1, -2]").unwrap(), [0x92, 0x01, 0xfe]);
        assert_eq!(
            args(&m, r#"{"b": 3, "a": 200}"#).unwrap(),
            [0x92, 0xcc, 200, 0x03]
        );
        let error = args(&m, "[300, 1]").unwrap_err().to_string();
        assert_eq!(error, "at `a`: 300 does not fit in u8 (0..=255)");
        assert!(
            args(&m, "[1.5, 1]")
                .unwrap_err()
                .to_string()
                .contains("not an integer")
        );
        assert!(
            args(&m, "[1]")
                .unwrap_err()
                .to_string()
                .contains("1 given, the method takes 2")
        );
        assert!(
            args(&m, r#"{"c": 1}"#)
                .unwrap_err()
                .to_string()
                .contains("no parameter of that name")
        );
    }

    #[test]
    fn bytes_floats_options_and_maps() {
        let m = method(vec![
            ("data", Type::Bytes),
            ("x", Type::F64),
            ("o", Type::option(Type::String)),
            ("m", Type::map(Type::U16, Type::Bool)),
        ]);
        let encoded = args(&m, r#"["AQI=", 1, null, {"7": true}]"#).unwrap();
        assert_eq!(
            encoded,
            [
                0x94, 0xc4, 2, 1, 2, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xc0, 0x81, 0x07, 0xc3
            ]
        );
        // The optional parameter may be left out when named.
        let named = args(&m, r#"{"data": [1, 2], "x": 1.0, "m": {}}"#).unwrap();
        assert_eq!(named[..4], [0x94, 0xc4, 2, 1]);
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect { w: u8, h: u8 },
        Pair(u8, u8),
    }

    #[test]
    fn enums_are_written_as_serde_writes_them() {
        let m = method(vec![("s", trace::<Shape>())]);
        assert_eq!(args(&m, r#"["Empty"]"#).unwrap(), b"\x91\xa5Empty");
        assert_eq!(
            args(&m, r#"[{"Rect": {"w": 1, "h": 2}}]"#).unwrap(),
            b"\x91\x81\xa4Rect\x82\xa1w\x01\xa1h\x02"
        );
        assert_eq!(
            args(&m, r#"[{"Pair": [1, 2]}]"#).unwrap(),
            b"\x91\x81\xa4Pair\x92\x01\x02"
        );
        let error = args(&m, r#"["Square"]"#).unwrap_err().to_string();
        assert!(error.contains("no variant `Square`"), "{error}");
        let error = args(&m, r#"[{"Rect": {"w": 1}}]"#).unwrap_err().to_string();
        assert_eq!(error, "at `s.Rect`: missing field `h` (a u8)");
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(tag = "type")]
    enum Tagged {
        Circle { r: u8 },
    }

    #[test]
    fn what_the_descriptor_cannot_describe_passes_through_as_it_is() {
        // An internally tagged enum traces as `any`; its JSON is its
        // MessagePack shape, so the value still decodes on the other side.
        let m = method(vec![("shape", trace::<Tagged>())]);
        assert!(matches!(m.params[0].ty, Type::Any { .. }));
        let encoded = args(&m, r#"[{"type": "Circle", "r": 2}]"#).unwrap();
        let (decoded,): (Tagged,) =
            sockets::__internal::protocol::codec::decode_value(&encoded).unwrap();
        assert_eq!(decoded, Tagged::Circle { r: 2 });
    }

    #[test]
    fn replies_decode_to_json() {
        assert_eq!(decode(&[0xc4, 2, 1, 2]).unwrap(), serde_json::json!("AQI="));
        assert_eq!(
            decode(b"\x81\xa2Ok\x05").unwrap(),
            serde_json::json!({"Ok": 5})
        );
        assert_eq!(
            decode(&[0x81, 0x01, 0xc3]).unwrap(),
            serde_json::json!({"1": true})
        );
        assert!(decode(&[0x01, 0x02]).is_err());
    }
}
