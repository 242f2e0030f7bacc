// The call context after another parameter.
use sockets::Context;

#[sockets::service]
pub trait Session {
    async fn whoami(&self, prefix: String, cx: &Context) -> String;
}

fn main() {}
