// Generated code names only `::sockets` paths: no prelude, shadowed names, and no serde in sight.
#![no_implicit_prelude]

extern crate sockets;
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
struct Arc;
#[allow(dead_code)]
struct Send;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
mod serde {}
#[allow(dead_code)]
mod core {}

#[sockets::service]
pub trait Shadowed {
    async fn text(&self, value: ::std::string::String) -> ::std::string::String;
    async fn maybe(&self, value: ::std::option::Option<u8>) -> ::std::result::Result<u8, u8>;
    async fn unit(&self, cx: &::sockets::Context);
    #[sockets(notify)]
    async fn poke(&self);
}

#[sockets::service]
pub mod shadowed_fns {
    #[sockets::handler]
    pub async fn echo(value: u8, other: u8) -> u8 {
        value + other
    }
}

fn main() {
    let _ = ShadowedServer::<()>::new;
    let _ = ShadowedClient::new;
    let _ = shadowed_fns::ShadowedFnsServer;
}

impl Shadowed for () {
    async fn text(&self, value: ::std::string::String) -> ::std::string::String {
        value
    }
    async fn maybe(&self, value: ::std::option::Option<u8>) -> ::std::result::Result<u8, u8> {
        value.ok_or(0)
    }
    async fn unit(&self, _cx: &::sockets::Context) {}
    async fn poke(&self) {}
}
