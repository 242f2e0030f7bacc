//! Every type shape, traced; canonical forms; the compatibility rules.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::*;

fn json(ty: &Type) -> serde_json::Value {
    serde_json::to_value(ty).unwrap()
}

#[derive(Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Nested {
    top_left: Point,
    points: Vec<Point>,
    label: Option<String>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    tags: BTreeMap<String, u16>,
    #[serde(skip)]
    _cache: u8,
    #[serde(rename = "kind")]
    shape: Shape,
}

#[derive(Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Segment(Point, Point),
    Rect { width: u32, height: u32 },
}

#[derive(Serialize, Deserialize)]
struct Meters(f64);

#[derive(Serialize, Deserialize)]
struct Rgb(u8, u8, u8);

#[derive(Serialize, Deserialize)]
struct Marker;

#[test]
fn primitives() {
    assert_eq!(trace::<i64>(), Type::I64);
    assert_eq!(trace::<u8>(), Type::U8);
    assert_eq!(trace::<f32>(), Type::F32);
    assert_eq!(trace::<bool>(), Type::Bool);
    assert_eq!(trace::<char>(), Type::Char);
    assert_eq!(trace::<String>(), Type::String);
    assert_eq!(trace::<()>(), Type::Unit);
    assert_eq!(trace::<u128>(), Type::U128);
    assert_eq!(json(&Type::I64), serde_json::json!({"type": "i64"}));
}

#[test]
fn bytes_option_sequences_maps_tuples() {
    assert_eq!(trace::<serde_bytes::ByteBuf>(), Type::Bytes);
    assert_eq!(trace::<bytes::Bytes>(), Type::Bytes);
    assert_eq!(
        trace::<Vec<u8>>(),
        Type::seq(Type::U8),
        "plain Vec<u8> is an array"
    );
    assert_eq!(trace::<Option<u32>>(), Type::option(Type::U32));
    assert_eq!(trace::<Vec<String>>(), Type::seq(Type::String));
    assert_eq!(
        trace::<HashMap<String, Vec<i64>>>(),
        Type::map(Type::String, Type::seq(Type::I64))
    );
    assert_eq!(
        trace::<(i64, bool)>(),
        Type::Tuple {
            name: None,
            items: vec![Type::I64, Type::Bool]
        }
    );
    assert_eq!(
        json(&trace::<Option<Vec<u8>>>()),
        serde_json::json!({"type": "option", "of": {"type": "seq", "of": {"type": "u8"}}})
    );
}

#[test]
fn nested_structs_with_serde_attributes() {
    let ty = trace::<Nested>();
    let expected = serde_json::json!({
        "type": "struct", "name": "Nested", "fields": [
            {"name": "topLeft", "type": {"type": "struct", "name": "Point", "fields": [
                {"name": "x", "type": {"type": "i32"}}, {"name": "y", "type": {"type": "i32"}}]}},
            {"name": "points", "type": {"type": "seq", "of": {"type": "struct", "name": "Point", "fields": [
                {"name": "x", "type": {"type": "i32"}}, {"name": "y", "type": {"type": "i32"}}]}}},
            {"name": "label", "type": {"type": "option", "of": {"type": "string"}}},
            {"name": "raw", "type": {"type": "bytes"}},
            {"name": "tags", "type": {"type": "map", "key": {"type": "string"}, "value": {"type": "u16"}}},
            {"name": "kind", "type": {"type": "enum", "name": "Shape", "variants": [
                {"form": "unit", "name": "Empty"},
                {"form": "newtype", "name": "Circle", "of": {"type": "f64"}},
                {"form": "tuple", "name": "Segment", "items": [
                    {"type": "struct", "name": "Point", "fields": [
                        {"name": "x", "type": {"type": "i32"}}, {"name": "y", "type": {"type": "i32"}}]},
                    {"type": "struct", "name": "Point", "fields": [
                        {"name": "x", "type": {"type": "i32"}}, {"name": "y", "type": {"type": "i32"}}]}]},
                {"form": "struct", "name": "Rect", "fields": [
                    {"name": "width", "type": {"type": "u32"}}, {"name": "height", "type": {"type": "u32"}}]}
            ]}}
        ]
    });
    assert_eq!(
        json(&ty),
        expected,
        "{}",
        serde_json::to_string_pretty(&json(&ty)).unwrap()
    );
}

#[test]
fn newtype_tuple_and_unit_structs() {
    assert_eq!(
        trace::<Meters>(),
        Type::Newtype {
            name: "Meters".into(),
            of: Box::new(Type::F64)
        }
    );
    assert_eq!(
        trace::<Rgb>(),
        Type::Tuple {
            name: Some("Rgb".into()),
            items: vec![Type::U8, Type::U8, Type::U8]
        }
    );
    assert_eq!(
        trace::<Marker>(),
        Type::Tuple {
            name: Some("Marker".into()),
            items: vec![]
        }
    );
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
enum Internal {
    A { x: i32 },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    A(i32),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Text(String),
}

#[derive(Serialize, Deserialize)]
struct Flattened {
    #[serde(flatten)]
    point: Point,
}

#[test]
fn representations_tracing_cannot_see_are_any_with_a_note() {
    for ty in [
        trace::<Internal>(),
        trace::<Adjacent>(),
        trace::<Untagged>(),
        trace::<Flattened>(),
    ] {
        assert!(
            matches!(&ty, Type::Any { note: Some(note) } if !note.is_empty()),
            "{ty:?}"
        );
    }
    // A struct holding one is `any` as a whole: the trace cannot resume inside it.
    #[derive(Serialize, Deserialize)]
    struct Holder {
        inner: Untagged,
    }
    assert!(matches!(trace::<Holder>(), Type::Any { .. }));
}

#[derive(Serialize, Deserialize)]
struct Tree {
    value: i64,
    children: Vec<Tree>,
    parent: Option<Box<Tree>>,
}

#[derive(Serialize, Deserialize)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Lit(i64),
}

#[test]
fn recursive_types_are_references_to_the_enclosing_container() {
    let reference = || Type::Ref {
        name: "Tree".into(),
    };
    assert_eq!(
        trace::<Tree>(),
        Type::Struct {
            name: "Tree".into(),
            fields: vec![
                Field::new("value", Type::I64),
                Field::new("children", Type::seq(reference())),
                Field::new("parent", Type::option(reference())),
            ]
        }
    );
    let expr = || Type::Ref {
        name: "Expr".into(),
    };
    let Type::Enum { variants, .. } = trace::<Expr>() else {
        panic!("an enum")
    };
    assert_eq!(
        variants,
        vec![
            Variant::Tuple {
                name: "Add".into(),
                items: vec![expr(), expr()]
            },
            Variant::Newtype {
                name: "Neg".into(),
                of: expr()
            },
            Variant::Newtype {
                name: "Lit".into(),
                of: Type::I64
            },
        ]
    );
    assert_eq!(
        canon::ty(&trace::<Tree>()),
        "{children:seq<^1>,parent:option<^1>,value:i64}"
    );
}

#[derive(Serialize, Deserialize)]
struct Outer {
    first: Inner1,
    second: Option<Inner2>,
}

#[derive(Serialize, Deserialize)]
enum Inner1 {
    A,
    B(Inner2),
}

#[derive(Serialize, Deserialize)]
enum Inner2 {
    X,
    Y,
    Z(u8),
}

#[test]
fn enums_nested_anywhere_get_every_variant() {
    let ty = trace::<Outer>();
    let text = canon::ty(&ty);
    assert_eq!(
        text,
        "{first:enum{A,B(enum{X,Y,Z(u8)})},second:option<enum{X,Y,Z(u8)}>}"
    );
    // Two instances of one generic enum stay apart.
    let pair = trace::<(Result<u8, String>, Result<bool, i64>)>();
    assert_eq!(
        canon::ty(&pair),
        "(enum{Err(string),Ok(u8)},enum{Err(i64),Ok(bool)})"
    );
}

#[test]
fn validating_types_are_traced_with_another_sample() {
    assert_eq!(trace::<std::num::NonZeroU32>(), Type::U32);
    // `is_human_readable` is false, as in the codec: an address is its bytes.
    let Type::Enum { name, variants } = trace::<std::net::IpAddr>() else {
        panic!()
    };
    assert_eq!(name, "IpAddr");
    assert_eq!(variants.len(), 2);
    assert_eq!(
        canon::ty(&trace::<std::time::Duration>()),
        "{nanos:u32,secs:u64}"
    );
}

#[test]
fn a_declared_result_is_split_into_returns_and_error() {
    let method = MethodDescriptor::new(
        "calc.divide",
        MethodKind::Call,
        false,
        "",
        vec![Field::new("a", Type::I64)],
        Some(trace::<Result<i64, Shape>>()),
    );
    assert_eq!(method.returns, Some(Type::I64));
    assert!(matches!(&method.error, Some(Type::Enum { name, .. }) if name == "Shape"));
    let service = ServiceDescriptor::new("calc", "", vec![method]);
    let method = &service.methods[0];
    assert_eq!(
        canonical_signature(method),
        "call calc.divide(i64)->i64!enum{Circle(f64),Empty,Rect{height:u32,width:u32},Segment#({x:i32,y:i32},{x:i32,y:i32})}"
    );
    assert!(method.hash.starts_with("sha256:") && method.hash.len() == 7 + 64);
    assert_eq!(method.signature(), "calc.divide(a: i64) -> i64 ! Shape");
}

#[test]
fn documents_round_trip_through_json() {
    let service = ServiceDescriptor::new(
        "calc",
        "A calculator.",
        vec![MethodDescriptor::new(
            "calc.area",
            MethodKind::Call,
            true,
            "The area.",
            vec![
                Field::new("shape", trace::<Shape>()),
                Field::new("tree", trace::<Tree>()),
            ],
            Some(trace::<Option<Meters>>()),
        )],
    );
    let document = Document::new([service]);
    let text = serde_json::to_string(&document).unwrap();
    assert_eq!(serde_json::from_str::<Document>(&text).unwrap(), document);
    // (The MessagePack form is checked over the wire: tests/tests/describe.rs.)
    // Kinds and types of a newer version read as `other` and `unknown`.
    let newer = r#"{"name": "s.m", "kind": "fan_in_stream", "open": false, "params": [
        {"name": "x", "type": {"type": "decimal128"}}], "returns": {"type": "i64"}, "hash": ""}"#;
    let method: MethodDescriptor = serde_json::from_str(newer).unwrap();
    assert_eq!(method.kind, MethodKind::Other);
    assert_eq!(method.params[0].ty, Type::Unknown);
}

fn service(methods: Vec<MethodDescriptor>) -> ServiceDescriptor {
    ServiceDescriptor::new("calc", "", methods)
}

fn call(name: &str, params: Vec<Type>, returns: Type) -> MethodDescriptor {
    let params = params
        .into_iter()
        .enumerate()
        .map(|(i, ty)| Field::new(format!("p{i}"), ty))
        .collect();
    MethodDescriptor::new(
        format!("calc.{name}"),
        MethodKind::Call,
        false,
        "",
        params,
        Some(returns),
    )
}

fn differences(ours: &ServiceDescriptor, theirs: &ServiceDescriptor) -> Vec<String> {
    compare([ours], &Document::new([theirs.clone()]), false)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn compatible_changes() {
    let ours = service(vec![call("add", vec![Type::I32, Type::I32], Type::I32)]);
    // Wider parameters, a narrower return, an added method, renamed parameters.
    let theirs = service(vec![
        MethodDescriptor::new(
            "calc.add",
            MethodKind::Call,
            false,
            "docs changed",
            vec![
                Field::new("x", Type::I64),
                Field::new("y", Type::option(Type::I64)),
            ],
            Some(Type::I16),
        ),
        call("sub", vec![Type::I64], Type::I64),
    ]);
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
    // A struct the peer reads with an extra optional field; an enum it reads
    // with an extra variant.
    let ours = service(vec![call(
        "area",
        vec![trace::<Shape>(), trace::<Point>()],
        Type::F64,
    )]);
    let mut shape = trace::<Shape>();
    if let Type::Enum { variants, .. } = &mut shape {
        variants.push(Variant::Unit {
            name: "Triangle".into(),
        });
    }
    let point = Type::Struct {
        name: "Point2".into(),
        fields: vec![
            Field::new("y", Type::I64),
            Field::new("x", Type::I32),
            Field::new("z", Type::option(Type::I32)),
        ],
    };
    let theirs = service(vec![call("area", vec![shape, point], Type::F32)]);
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
    // bytes reads an array of u8.
    let ours = service(vec![call("put", vec![Type::seq(Type::U8)], Type::Unit)]);
    let theirs = service(vec![call("put", vec![Type::Bytes], Type::Unit)]);
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
}

#[test]
fn incompatible_changes_are_each_listed() {
    let ours = service(vec![
        call("add", vec![Type::I64, Type::I64], Type::I64),
        call("area", vec![trace::<Point>()], trace::<Shape>()),
        call("gone", vec![], Type::Unit),
        call("maybe", vec![Type::option(Type::String)], Type::String),
    ]);
    let mut fewer_variants = trace::<Shape>();
    if let Type::Enum { variants, .. } = &mut fewer_variants {
        variants.retain(|v| v.name() != "Rect");
        variants.push(Variant::Unit {
            name: "Triangle".into(),
        });
    }
    let theirs = service(vec![
        call("add", vec![Type::I32, Type::I64], Type::I64),
        call(
            "area",
            vec![Type::Struct {
                name: "Point".into(),
                fields: vec![Field::new("x", Type::I32), Field::new("z", Type::I32)],
            }],
            fewer_variants,
        ),
        call("maybe", vec![Type::String], Type::option(Type::String)),
    ]);
    assert_eq!(
        differences(&ours, &theirs),
        vec![
            "calc.add: argument `p0`: this side sends i64, the peer expects i32",
            "calc.area: argument `p0`: the peer requires field `z`, which this side does not send",
            "calc.area: return value: the peer may send variant `Triangle`, which this side does not know",
            "calc.gone: the peer does not serve this method",
            "calc.maybe: argument `p0`: this side may send nil, the peer requires string",
            "calc.maybe: return value: the peer may send nil, this side requires string",
        ]
    );
    let notify = service(vec![MethodDescriptor::new(
        "calc.add",
        MethodKind::Notify,
        false,
        "",
        vec![],
        None,
    )]);
    assert_eq!(
        differences(&ours, &notify)[0],
        "calc.add: this side calls it, the peer declares it a notification"
    );
    let other = ServiceDescriptor::new("other", "", vec![]);
    assert_eq!(
        differences(&ours, &other),
        vec!["calc: the peer does not serve this service"]
    );
}

#[test]
fn streams_the_caller_sends_have_their_own_kinds_and_signatures() {
    let upload = MethodDescriptor::new(
        "files.put",
        MethodKind::ClientStream,
        false,
        "",
        vec![Field::new("name", Type::String)],
        Some(Type::U64),
    )
    .with_stream_in(Type::Bytes);
    assert_eq!(
        canonical_signature(&upload),
        "client_stream files.put(string)<=stream(bytes)->u64"
    );
    assert_eq!(
        upload.signature(),
        "files.put(name: string) <- stream<bytes> -> u64"
    );
    let chat = MethodDescriptor::new("chat.talk", MethodKind::BidiStream, false, "", vec![], None)
        .with_stream_in(Type::String)
        .with_stream_out(Type::String);
    assert_eq!(
        canonical_signature(&chat),
        "bidi_stream chat.talk()<=stream(string)=>stream(string)"
    );
    let document = Document::new([service(vec![upload, chat])]);
    let text = serde_json::to_string(&document).unwrap();
    assert!(text.contains(r#""kind":"client_stream""#) && text.contains(r#""stream_in":"#));
    assert_eq!(serde_json::from_str::<Document>(&text).unwrap(), document);
}

#[test]
fn a_stream_the_peer_reads_as_another_item_type_is_a_difference() {
    let put = |item: Type| {
        MethodDescriptor::new(
            "calc.put",
            MethodKind::ClientStream,
            false,
            "",
            vec![],
            Some(Type::U64),
        )
        .with_stream_in(item)
    };
    let (ours, theirs) = (
        service(vec![put(Type::String)]),
        service(vec![put(Type::U64)]),
    );
    let found = differences(&ours, &theirs);
    assert!(
        found.iter().any(|d| d.contains("item sent on the stream")),
        "{found:?}"
    );
    assert_eq!(differences(&ours, &ours), Vec::<String>::new());
}
