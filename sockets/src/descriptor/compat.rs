//! Comparing what this side expects of a peer's services with what the peer
//! describes (`docs/DESCRIPTOR.md` §5 states the rules).
//!
//! Each value has a writer and a reader: arguments are written by the caller
//! and read by the callee, return values the other way. A change is
//! compatible when every value the writer may send, the reader decodes:
//!
//! - an integer type reads a narrower one (`i64` reads `i32`, `u32` reads
//!   `u16`, a signed type reads an unsigned one of fewer bits), `f64` reads
//!   `f32`, `string` reads `char`, `bytes` reads an array of `u8`;
//! - `T?` reads `T`; `T` does not read `T?` (the writer may send nil);
//! - a struct reads a struct with more fields (extra fields are ignored) and
//!   with fewer, if the missing ones are options;
//! - an enum reads an enum with fewer variants; a variant the writer may send
//!   and the reader does not know breaks;
//! - `any` on either side is not checked.
//!
//! Method and service additions are compatible; a missing method, another
//! kind (call or notify), another number of arguments, or a declared
//! `Result` on one side only, are not. Parameter names, docs and type names
//! do not matter.

use std::collections::HashSet;
use std::fmt;

use super::{
    Document, Field, MethodDescriptor, MethodKind, ServiceDescriptor, Type, VERSION, Variant,
};

/// One way a peer's services differ from what this side expects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Difference {
    /// The service or method (`calculator`, `calculator.add`).
    pub at: String,
    /// What differs, and where inside the method.
    pub problem: String,
}

impl Difference {
    /// A difference at `at`.
    pub fn new(at: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            at: at.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// Every difference found between the services a side expects and those
/// its peer describes: what [`Error::Incompatible`](crate::Error::Incompatible) holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incompatible {
    /// The differences, in the order of the expected services and methods.
    pub differences: Vec<Difference>,
}

impl fmt::Display for Incompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.differences.len();
        write!(f, "{n} difference{}", if n == 1 { "" } else { "s" })?;
        for (i, difference) in self.differences.iter().enumerate() {
            write!(f, "{} {difference}", if i == 0 { ":" } else { ";" })?;
        }
        Ok(())
    }
}

/// The differences between the services this side expects (`expected`, its
/// own generated descriptors of what it calls) and what the peer serves
/// (`actual`); empty when every expected method can be called as this side
/// calls it. `guest`: this side is a guest session, so a method it expects
/// open must be open on the peer too.
pub fn compare<'a>(
    expected: impl IntoIterator<Item = &'a ServiceDescriptor>,
    actual: &Document,
    guest: bool,
) -> Vec<Difference> {
    let mut differences = Vec::new();
    if actual.version != VERSION {
        differences.push(Difference::new(
            super::DESCRIBE_METHOD,
            format!(
                "the peer describes its services in format version {}, this side reads version {VERSION}",
                actual.version
            ),
        ));
        return differences;
    }
    for expected in expected {
        let Some(service) = actual.service(&expected.name) else {
            differences.push(Difference::new(
                &expected.name,
                "the peer does not serve this service",
            ));
            continue;
        };
        if service.hash == expected.hash && !guest {
            continue;
        }
        for method in &expected.methods {
            match service.method(&method.name) {
                Some(theirs) => compare_method(method, theirs, guest, &mut differences),
                None => differences.push(Difference::new(
                    &method.name,
                    "the peer does not serve this method",
                )),
            }
        }
    }
    differences
}

fn compare_method(
    ours: &MethodDescriptor,
    theirs: &MethodDescriptor,
    guest: bool,
    differences: &mut Vec<Difference>,
) {
    let mut found = |problem: String| differences.push(Difference::new(&ours.name, problem));
    if ours.kind != theirs.kind || ours.kind == MethodKind::Other {
        found(format!(
            "this side {} it, the peer declares it {}",
            match ours.kind {
                MethodKind::Call => "calls",
                MethodKind::Notify => "notifies",
                MethodKind::ServerStream => "streams from",
                MethodKind::ClientStream => "streams to",
                MethodKind::BidiStream => "streams both ways with",
                MethodKind::Other => "does not know how to invoke",
            },
            kind_name(theirs.kind)
        ));
        return;
    }
    if guest && ours.open && !theirs.open {
        found("open to guests here, not on the peer, and this session is a guest".into());
    }
    if ours.params.len() != theirs.params.len() {
        found(format!(
            "this side sends {} argument{}, the peer expects {}",
            ours.params.len(),
            if ours.params.len() == 1 { "" } else { "s" },
            theirs.params.len()
        ));
    } else {
        for (mine, peer) in ours.params.iter().zip(&theirs.params) {
            let mut cx = Cx::new(Direction::Send);
            cx.check(&peer.ty, &mine.ty, &format!("argument `{}`", mine.name));
            for problem in cx.problems {
                found(problem);
            }
        }
    }
    match (&ours.error, &theirs.error) {
        (Some(_), None) => found(
            "this side expects a declared `Result` ({\"Ok\": ...} or {\"Err\": ...}), the peer returns a plain value".into(),
        ),
        (None, Some(_)) => found(
            "the peer returns a declared `Result` ({\"Ok\": ...} or {\"Err\": ...}), this side expects a plain value".into(),
        ),
        (Some(mine), Some(peer)) => {
            let mut cx = Cx::new(Direction::Receive);
            cx.check(mine, peer, "error value");
            for problem in cx.problems {
                found(problem);
            }
        }
        (None, None) => {}
    }
    if let (Some(mine), Some(peer)) = (&ours.stream_in, &theirs.stream_in) {
        let mut cx = Cx::new(Direction::Send);
        cx.check(peer, mine, "item sent on the stream");
        for problem in cx.problems {
            found(problem);
        }
    }
    if let (Some(mine), Some(peer)) = (&ours.stream_out, &theirs.stream_out) {
        let mut cx = Cx::new(Direction::Receive);
        cx.check(mine, peer, "stream item");
        for problem in cx.problems {
            found(problem);
        }
    }
    if let (Some(mine), Some(peer)) = (&ours.returns, &theirs.returns) {
        let mut cx = Cx::new(Direction::Receive);
        cx.check(mine, peer, "return value");
        for problem in cx.problems {
            found(problem);
        }
    }
}

fn kind_name(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Call => "a call",
        MethodKind::Notify => "a notification",
        MethodKind::ServerStream => "a stream",
        MethodKind::ClientStream => "a stream it receives",
        MethodKind::BidiStream => "a two-way stream",
        MethodKind::Other => "of a kind this version does not know",
    }
}

/// Who writes a value: this side (an argument) or the peer (a return value).
#[derive(Clone, Copy)]
enum Direction {
    Send,
    Receive,
}

impl Direction {
    /// (writer, reader), as the messages name them.
    fn sides(self) -> (&'static str, &'static str) {
        match self {
            Self::Send => ("this side", "the peer"),
            Self::Receive => ("the peer", "this side"),
        }
    }
}

/// One comparison of a reader's type with a writer's.
struct Cx<'a> {
    direction: Direction,
    problems: Vec<String>,
    /// Enclosing named containers on each side, for references.
    readers: Vec<&'a Type>,
    writers: Vec<&'a Type>,
    /// Pairs already compared (by address): a recursive type ends here.
    seen: HashSet<(usize, usize)>,
}

impl<'a> Cx<'a> {
    fn new(direction: Direction) -> Self {
        Self {
            direction,
            problems: Vec::new(),
            readers: Vec::new(),
            writers: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn problem(&mut self, at: &str, text: String) {
        self.problems.push(format!("{at}: {text}"));
    }

    /// Whether `reader` decodes every value `writer` may write; the problems
    /// are recorded with `at` (where in the method they are).
    fn check(&mut self, reader: &'a Type, writer: &'a Type, at: &str) {
        let reader = resolve(reader, &self.readers);
        let writer = resolve(writer, &self.writers);
        if !self.seen.insert((addr(reader), addr(writer))) {
            return;
        }
        let (w_side, r_side) = self.direction.sides();
        match (reader, writer) {
            (Type::Any { .. }, _) | (_, Type::Any { .. }) => {}
            (Type::Newtype { of, .. }, _) => {
                self.readers.push(reader);
                self.check(of, writer, at);
                self.readers.pop();
            }
            (_, Type::Newtype { of, .. }) => {
                self.writers.push(writer);
                self.check(reader, of, at);
                self.writers.pop();
            }
            (Type::Unknown, _) | (_, Type::Unknown) => {
                self.problem(at, "a type kind this version does not know".into())
            }
            (Type::Option { of: r }, Type::Option { of: w }) => self.check(r, w, at),
            (Type::Option { of: r }, w) => self.check(r, w, at),
            (r, Type::Option { .. }) => {
                self.problem(at, format!("{w_side} may send nil, {r_side} requires {r}"))
            }
            (Type::Seq { of: r }, Type::Seq { of: w }) => {
                self.check(r, w, &format!("{at}, element"))
            }
            (Type::Bytes, Type::Seq { of }) if matches!(resolve(of, &self.writers), Type::U8) => {}
            (Type::Tuple { items: r, .. }, Type::Tuple { items: w, .. }) => {
                if r.len() != w.len() {
                    self.problem(
                        at,
                        format!(
                            "{w_side} sends {} elements, {r_side} expects {}",
                            w.len(),
                            r.len()
                        ),
                    );
                    return;
                }
                self.nested(reader, writer, |cx| {
                    for (i, (r, w)) in r.iter().zip(w).enumerate() {
                        cx.check(r, w, &format!("{at}, element {i}"));
                    }
                });
            }
            (Type::Map { key: rk, value: rv }, Type::Map { key: wk, value: wv }) => {
                self.check(rk, wk, &format!("{at}, map key"));
                self.check(rv, wv, &format!("{at}, map value"));
            }
            (Type::Struct { fields: r, .. }, Type::Struct { fields: w, .. }) => {
                self.nested(reader, writer, |cx| cx.fields(r, w, at));
            }
            (Type::Enum { variants: r, .. }, Type::Enum { variants: w, .. }) => {
                self.nested(reader, writer, |cx| {
                    for written in w {
                        let name = written.name();
                        let Some(read) = r.iter().find(|v| v.name() == name) else {
                            cx.problem(
                                at,
                                format!("{w_side} may send variant `{name}`, which {r_side} does not know"),
                            );
                            continue;
                        };
                        cx.variant(read, written, &format!("{at}, variant `{name}`"));
                    }
                });
            }
            (r, w) if scalar_reads(r, w) => {}
            (r, w) => self.problem(at, format!("{w_side} sends {w}, {r_side} expects {r}")),
        }
    }

    /// Runs `inside` with both containers on their stacks.
    fn nested(&mut self, reader: &'a Type, writer: &'a Type, inside: impl FnOnce(&mut Self)) {
        self.readers.push(reader);
        self.writers.push(writer);
        inside(self);
        self.readers.pop();
        self.writers.pop();
    }

    fn fields(&mut self, read: &'a [Field], written: &'a [Field], at: &str) {
        let (w_side, r_side) = self.direction.sides();
        for field in read {
            match written.iter().find(|w| w.name == field.name) {
                Some(w) => self.check(&field.ty, &w.ty, &format!("{at}, field `{}`", field.name)),
                None if matches!(resolve(&field.ty, &self.readers), Type::Option { .. }) => {}
                None => self.problem(
                    at,
                    format!(
                        "{r_side} requires field `{}`, which {w_side} does not send",
                        field.name
                    ),
                ),
            }
        }
    }

    fn variant(&mut self, read: &'a Variant, written: &'a Variant, at: &str) {
        let (w_side, r_side) = self.direction.sides();
        match (read, written) {
            (Variant::Unit { .. }, Variant::Unit { .. }) => {}
            (Variant::Newtype { of: r, .. }, Variant::Newtype { of: w, .. }) => {
                self.check(r, w, at)
            }
            (Variant::Tuple { items: r, .. }, Variant::Tuple { items: w, .. })
                if r.len() == w.len() =>
            {
                for (i, (r, w)) in r.iter().zip(w).enumerate() {
                    self.check(r, w, &format!("{at}, element {i}"));
                }
            }
            (Variant::Struct { fields: r, .. }, Variant::Struct { fields: w, .. }) => {
                self.fields(r, w, at);
            }
            (r, w) => self.problem(
                at,
                format!(
                    "{w_side} sends a {} variant, {r_side} expects a {} variant",
                    describe_form(w),
                    describe_form(r)
                ),
            ),
        }
    }
}

fn describe_form(variant: &Variant) -> String {
    match variant {
        Variant::Tuple { items, .. } => format!("tuple ({} elements)", items.len()),
        other => other.form().to_owned(),
    }
}

fn addr(ty: &Type) -> usize {
    std::ptr::from_ref(ty) as usize
}

/// A reference resolved to its enclosing container on `stack`.
fn resolve<'a>(ty: &'a Type, stack: &[&'a Type]) -> &'a Type {
    match ty {
        Type::Ref { name } => stack
            .iter()
            .rev()
            .find(|t| t.name() == Some(name.as_str()))
            .copied()
            .unwrap_or(ty),
        ty => ty,
    }
}

/// (signed, bits) of an integer type.
fn integer(ty: &Type) -> Option<(bool, u32)> {
    Some(match ty {
        Type::I8 => (true, 8),
        Type::I16 => (true, 16),
        Type::I32 => (true, 32),
        Type::I64 => (true, 64),
        Type::I128 => (true, 128),
        Type::U8 => (false, 8),
        Type::U16 => (false, 16),
        Type::U32 => (false, 32),
        Type::U64 => (false, 64),
        Type::U128 => (false, 128),
        _ => return None,
    })
}

/// Whether the scalar `reader` decodes every value of the scalar `writer`.
fn scalar_reads(reader: &Type, writer: &Type) -> bool {
    if let (Some((rs, rb)), Some((ws, wb))) = (integer(reader), integer(writer)) {
        return match (rs, ws) {
            (true, true) | (false, false) => wb <= rb,
            (true, false) => wb < rb,
            (false, true) => false,
        };
    }
    matches!(
        (reader, writer),
        (Type::Bool, Type::Bool)
            | (Type::F32, Type::F32)
            | (Type::F64, Type::F32 | Type::F64)
            | (Type::Char, Type::Char)
            | (Type::String, Type::String | Type::Char)
            | (Type::Bytes, Type::Bytes)
            | (Type::Unit, Type::Unit)
    )
}
