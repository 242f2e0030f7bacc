//! Procedural macros for `sockets`. Use them through the `sockets` crate,
//! which re-exports them; the generated code names only `::sockets` paths.
