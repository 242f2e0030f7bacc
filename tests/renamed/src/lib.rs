//! Services declared in a crate that names the runtime `rpc` (a renamed
//! dependency), without the prelude, with the usual names shadowed: the
//! generated code must name only `::rpc` paths, as `crate = "::rpc"` says.
//! `::sockets` does not resolve here at all (and `sockets` names an empty
//! module). `tests/renamed.rs` serves and calls these services.
//!
//! The attributes are spelled `#[::rpc::service]`: without the prelude,
//! `rpc::service` would need an `extern crate rpc;`, which rustc then
//! reports as unused.
#![no_implicit_prelude]

extern crate std;

#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Send;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
mod serde {}
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod sockets {}

/// A counter, declared as a trait.
#[::rpc::service(crate = "::rpc")]
pub trait Counter {
    /// Adds two numbers.
    async fn add(&self, a: u64, b: u64) -> u64;
    /// Greets `name`, saying which connection asked.
    async fn greet(
        &self,
        cx: &::rpc::Context,
        name: ::std::string::String,
    ) -> ::std::string::String;
    /// Divides, or says why not.
    async fn divide(&self, a: u64, b: u64) -> ::std::result::Result<u64, ::std::string::String>;
    /// Fire-and-forget.
    #[sockets(notify)]
    async fn poke(&self, times: u8);
}

/// The [`Counter`] the tests serve.
pub struct Tally;

impl Counter for Tally {
    async fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }

    async fn greet(
        &self,
        cx: &::rpc::Context,
        name: ::std::string::String,
    ) -> ::std::string::String {
        ::std::format!("hello {name}, connection {}", cx.connection_id().get())
    }

    async fn divide(&self, a: u64, b: u64) -> ::std::result::Result<u64, ::std::string::String> {
        ::std::option::Option::ok_or_else(a.checked_div(b), || {
            ::std::string::ToString::to_string("by zero")
        })
    }

    async fn poke(&self, _times: u8) {}
}

/// Tools, declared as a module of handler functions.
#[::rpc::service(crate = "::rpc")]
pub mod tools {
    /// Returns the bytes reversed.
    #[rpc::handler]
    pub async fn reverse(mut bytes: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
        bytes.reverse();
        bytes
    }

    /// Whether the call came from a guest.
    #[handler]
    #[sockets(open)]
    pub async fn is_guest(cx: ::rpc::Context) -> bool {
        cx.session() == ::rpc::SessionKind::Guest
    }
}
