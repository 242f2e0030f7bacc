// Generated code stays quiet under strict lints in the user's crate.
#![deny(warnings, unused_qualifications, unused_results, rust_2018_idioms, unused_lifetimes)]

use sockets::Context;

#[sockets::service]
pub trait Strict {
    async fn add(&self, cx: &Context, a: i64, b: i64) -> i64;
    #[sockets(notify)]
    async fn ping(&self);
}

#[sockets::service]
pub mod strict_fns {
    use sockets::Context;

    #[sockets::handler]
    pub async fn id(cx: &Context, count: u64) -> u64 {
        cx.connection_id().get() + count
    }
}

struct S;

impl Strict for S {
    async fn add(&self, _cx: &Context, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn ping(&self) {}
}

fn main() {
    let _server = StrictServer::new(S);
    let _fns = strict_fns::StrictFnsServer;
}
